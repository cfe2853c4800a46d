// Bundles the viewer with esbuild into dist/ (app.js: list, sign-in and image set pages; slide.js: the
// slide page; experiments.js: the experiments page; diff.js: the diff view; map.js: the annotation map page; viewer.css). `node build.mjs --watch` rebuilds on change.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));

const options = {
  entryPoints: { app: "src/app.js", slide: "src/slide.js", experiments: "src/experiments.js", diff: "src/diff.js", map: "src/map.js", viewer: "src/viewer.css" },
  bundle: true,
  format: "esm",
  target: "es2022",
  outdir: path.join(here, "dist"),
  absWorkingDir: here,
  sourcemap: true,
  minify: !process.argv.includes("--dev"),
  legalComments: "linked",
  logLevel: "warning",
};

if (process.argv.includes("--watch")) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
