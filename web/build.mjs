// Builds the dashboard into ../controller/ui/assets: app.js (the bundle), app.css (src/app.css
// and uPlot's stylesheet, both imported from TS) and index.html (copied). Deterministic: the
// same sources give byte-identical files (no sourcemaps, no banners, no timestamps).
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const web = dirname(fileURLToPath(import.meta.url));
const out = resolve(web, "../controller/ui/assets");

// The generated client lives in ../clients/ts/src/gen and imports @bufbuild/protobuf; a
// normal lookup from there would find ../clients/ts/node_modules when it exists and bundle a
// second copy. Resolve every @bufbuild/protobuf and @connectrpc/* import (subpaths included)
// from web/ instead, so exactly one copy, web/node_modules', ends up in the bundle.
const singleCopy = {
  name: "single-copy",
  setup(build) {
    build.onResolve({ filter: /^(@bufbuild\/protobuf|@connectrpc\/[^/]+)(\/.*)?$/ }, async (args) => {
      if (args.pluginData?.singleCopy) return undefined;
      const r = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: web,
        pluginData: { singleCopy: true },
      });
      if (r.errors.length > 0) return { errors: r.errors };
      if (!r.path.startsWith(join(web, "node_modules") + "/")) {
        return { errors: [{ text: `${args.path} resolved outside web/node_modules: ${r.path}` }] };
      }
      return r;
    });
  },
};

// The generated files import ../../buf/validate/validate_pb.js only as a descriptor
// dependency; bundle a minimal stand-in instead of the 70 KB protovalidate descriptor (see
// src/stub/validate_pb.ts).
const validateStub = {
  name: "validate-stub",
  setup(build) {
    build.onResolve({ filter: /\/buf\/validate\/validate_pb\.js$/ }, (args) => {
      if (!args.importer.includes("/clients/ts/src/gen/")) return undefined;
      return { path: join(web, "src/stub/validate_pb.ts") };
    });
  },
};

mkdirSync(out, { recursive: true });
// The directory holds exactly index.html, app.js and app.css.
for (const f of readdirSync(out)) rmSync(join(out, f), { recursive: true, force: true });

const result = await esbuild.build({
  absWorkingDir: web,
  entryPoints: [join(web, "src/main.tsx")],
  outfile: join(out, "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  legalComments: "none",
  sourcemap: false,
  charset: "utf8",
  jsx: "automatic",
  jsxImportSource: "preact",
  tsconfig: join(web, "tsconfig.json"),
  define: { "process.env.NODE_ENV": '"production"' },
  metafile: true,
  logLevel: "warning",
  plugins: [singleCopy, validateStub],
});

copyFileSync(join(web, "index.html"), join(out, "index.html"));

const files = readdirSync(out).sort();
if (files.join(",") !== "app.css,app.js,index.html") {
  throw new Error(`unexpected files in ${out}: ${files.join(", ")}`);
}
// One copy of each shared package: every bundled input of them must come from web/node_modules.
const inputs = Object.keys(result.metafile.inputs);
const strays = inputs.filter((p) => /node_modules\/(@bufbuild|@connectrpc)\//.test(p) && !p.startsWith("node_modules/"));
if (strays.length > 0) throw new Error(`second copy bundled: ${strays.join(", ")}`);
for (const [name, o] of Object.entries(result.metafile.outputs)) {
  console.log(`${name.replace(/^.*\//, "")}\t${o.bytes} bytes`);
}
