// STAC Browser's build options for `app-package serve` (upstream's defaults and their meaning:
// node_modules/@radiantearth/stac-browser/config.js and docs/options.md). The catalog URL is not
// here: the server writes it into /browser/config.js at runtime ({base URL}/outputs/catalog.json).
module.exports = Object.assign(require("@radiantearth/stac-browser/config.js"), {
  catalogTitle: "app-package job outputs",
  pathPrefix: "/browser/", // served by the server under /browser/
  historyMode: "hash", // #/… routes: the server needs no rewrites to index.html
  allowExternalAccess: false, // only the server's own catalogs
  noSourceMaps: true,
});
