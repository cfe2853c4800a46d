// The tiled slide: an OpenSeadragon viewer on the server's DeepZoom tiles, with the navigator (minimap),
// no click-to-zoom (clicks belong to the tools) and OSD's own keyboard navigation off (keys.js owns keys).
import OpenSeadragon from "openseadragon";

export { slideBase } from "./origin.js";

export function dziUrl(fingerprint, frame = 0, origin = "") {
  return `${origin}/slides/${encodeURIComponent(fingerprint)}.dzi${frame ? `?frame=${frame}` : ""}`;
}

export function createViewer(element, fingerprint, frame = 0, origin = "") {
  return createViewerAt(element, dziUrl(fingerprint, frame, origin),
    origin ? { crossOriginPolicy: "Anonymous" } : {}); // another server's tiles: CORS, an untainted canvas
}

// any DeepZoom source with the slides' URL scheme (an annotation map's /maps/MAP.dzi too)
export function createViewerAt(element, tileSources, options = {}) {
  // OSD injects an inline <style> unless one with this marker exists; the CSP forbids inline styles, so an
  // empty marker stands in (its one rule lives in viewer.css)
  if (!document.querySelector("style[data-openseadragon-mobile-css]")) {
    const marker = document.createElement("style");
    marker.setAttribute("data-openseadragon-mobile-css", "true");
    document.head.appendChild(marker);
  }
  const viewer = OpenSeadragon({
    element,
    tileSources,
    showNavigator: true,
    navigatorPosition: "BOTTOM_RIGHT",
    showNavigationControl: false,
    animationTime: 0.3,
    blendTime: 0,
    maxZoomPixelRatio: 8,
    visibilityRatio: 0.2,
    crossOriginPolicy: false,
    gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: false, flickEnabled: false },
    gestureSettingsTouch: { clickToZoom: false, dblClickToZoom: false },
    keyboardNavEnabled: false,
    drawer: "canvas",
    ...options,
  });
  viewer.addHandler("canvas-key", (e) => { e.preventDefaultAction = true; });
  return viewer;
}

// Image coordinates <-> coordinates inside the viewer element (CSS pixels).
export function imageToScreen(viewer, x, y) {
  const p = viewer.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
  return [p.x, p.y];
}

export function screenToImage(viewer, x, y) {
  const p = viewer.viewport.viewerElementToImageCoordinates(new OpenSeadragon.Point(x, y));
  return [p.x, p.y];
}

// screen pixels per image pixel at the current zoom
export function imageZoom(viewer) {
  return viewer.viewport.viewportToImageZoom(viewer.viewport.getZoom(true));
}

// The view as image coordinates of the centre and image zoom (what deep links carry).
export function currentView(viewer) {
  const c = viewer.viewport.getCenter(true);
  const ic = viewer.viewport.viewportToImageCoordinates(c);
  return { x: Math.round(ic.x), y: Math.round(ic.y), zoom: +imageZoom(viewer).toPrecision(4) };
}

export function restoreView(viewer, { x, y, zoom }) {
  if (![x, y, zoom].every(Number.isFinite) || zoom <= 0) return;
  const vp = viewer.viewport;
  vp.zoomTo(vp.imageToViewportZoom(zoom), null, true);
  vp.panTo(vp.imageToViewportCoordinates(new OpenSeadragon.Point(x, y)), true);
}

export function hasWebGL2() {
  try {
    return !!document.createElement("canvas").getContext("webgl2");
  } catch {
    return false;
  }
}

// the view has stopped moving, every tile it needs is loaded and drawn, and a frame has been painted
export function settled(viewer) {
  return new Promise((resolve) => {
    const check = () => {
      const vp = viewer.viewport;
      const still = vp.getZoom(true) === vp.getZoom(false) && vp.getCenter(true).equals(vp.getCenter(false));
      const item = viewer.world.getItemAt(0);
      if (still && item && item.getFullyLoaded() && !viewer.world.needsDraw()) {
        requestAnimationFrame(() => requestAnimationFrame(() => resolve()));
      } else {
        setTimeout(check, 30);
      }
    };
    check();
  });
}
