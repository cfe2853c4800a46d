// Where an image's pixels are served: this server, or (a virtual image set) the image record's `origin`,
// another exactvc server whose tile routes answer with CORS headers (docs/viewer.md).
export function slideBase(image) {
  return image && image.origin ? String(image.origin).replace(/\/+$/, "") : "";
}
