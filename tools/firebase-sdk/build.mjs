// Bundles the pinned Firebase JS SDK (package-lock.json) into one ES module the app serves
// itself, so no page loads code from Google's CDN.
//   node tools/firebase-sdk/build.mjs [outfile]      (default: static/vendor/firebase.js)
// The output depends only on the locked packages: the tests rebuild it and compare bytes.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outfile = resolve(process.argv[2] ?? join(here, "..", "..", "static", "vendor", "firebase.js"));

function installedVersion(name) {
  return JSON.parse(readFileSync(join(here, "node_modules", name, "package.json"), "utf8")).version;
}

const banner =
  `/*! Firebase JS SDK ${installedVersion("firebase")} (firebase/app, firebase/auth), Apache-2.0;` +
  ` bundled by tools/firebase-sdk/build.mjs with esbuild ${installedVersion("esbuild")} */`;

await build({
  absWorkingDir: here,
  entryPoints: ["entry.js"],
  outfile,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  minify: true,
  legalComments: "eof",
  banner: { js: banner },
  logLevel: "warning",
});
console.log(`wrote ${outfile}`);
