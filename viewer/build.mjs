// Bundles the viewer with esbuild into dist/ (app.js: list, sign-in and image set pages; slide.js: the
// slide page; viewer.css). `node build.mjs --watch` rebuilds on change.
import * as esbuild from "esbuild";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const layer = path.join(here, "src", "layer", "index.js");
const standin = path.join(here, "src", "annotations", "standin.js");

// "exact-annotation-layer" is the WebGL2 layer (src/layer/) when present, else the small 2D stand-in
const layerAlias = {
  name: "annotation-layer",
  setup(build) {
    build.onResolve({ filter: /^exact-annotation-layer$/ }, () => ({ path: existsSync(layer) ? layer : standin }));
  },
};

const options = {
  entryPoints: { app: "src/app.js", slide: "src/slide.js", viewer: "src/viewer.css" },
  bundle: true,
  format: "esm",
  target: "es2022",
  outdir: path.join(here, "dist"),
  absWorkingDir: here,
  sourcemap: true,
  minify: !process.argv.includes("--dev"),
  legalComments: "linked",
  logLevel: "warning",
  plugins: [layerAlias],
};

if (process.argv.includes("--watch")) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
