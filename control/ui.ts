/**
 * Serves the web UI's static files (ui/) from the control plane: `index.html` at `/`, the
 * rest under `/ui/…`. Files are read relative to this module, so they work from a source
 * checkout and from the compiled binary (`deno compile --include ui`). Every answer carries
 * a strict Content-Security-Policy (no inline scripts or styles) and an ETag; browsers
 * revalidate each time (`no-cache`), so an upgraded binary never serves stale assets.
 *
 * Paths it does not know resolve to `undefined`, so the API answers its usual JSON 404.
 */

const UI_ROOT = new URL("../ui/", import.meta.url);

const CONTENT_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  json: "application/json",
};

/** The UI talks only to its own origin and never runs inline code. */
export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

// Lower-case names with dashes, in folders; no dot segments, so nothing outside ui/.
const ASSET_PATH_RE = /^\/ui\/((?:[a-z0-9_-]+\/)*[a-z0-9_-]+\.([a-z]+))$/;

interface Asset {
  body: Uint8Array<ArrayBuffer>;
  etag: string;
  type: string;
  mtime: number | undefined;
}

export interface UiOptions {
  /** Folder holding index.html and the assets (default: ui/ beside control/). */
  root?: URL;
}

export type UiHandler = (req: Request, url: URL) => Promise<Response | undefined>;

export function createUiHandler(options: UiOptions = {}): UiHandler {
  const root = options.root ?? UI_ROOT;
  const cache = new Map<string, Asset>();

  /** The file's bytes and ETag; re-read when it changed on disk (UI work under `f2s dev`). */
  async function load(relative: string, ext: string): Promise<Asset | undefined> {
    const file = new URL(relative, root);
    let mtime: number | undefined;
    try {
      const info = await Deno.stat(file);
      if (!info.isFile) return undefined;
      mtime = info.mtime?.getTime();
    } catch {
      return undefined;
    }
    const cached = cache.get(relative);
    // Without an mtime (some embedded file systems) the file cannot change: keep it.
    if (cached && cached.mtime === mtime) return cached;
    let body: Uint8Array<ArrayBuffer>;
    try {
      body = await Deno.readFile(file);
    } catch {
      return undefined;
    }
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
    const etag = `"${
      Array.from(digest.slice(0, 12), (b) => b.toString(16).padStart(2, "0")).join("")
    }"`;
    const asset = { body, etag, type: CONTENT_TYPES[ext], mtime };
    cache.set(relative, asset);
    return asset;
  }

  return async (req, url) => {
    if (req.method !== "GET" && req.method !== "HEAD") return undefined;
    let relative: string, ext: string;
    if (url.pathname === "/" || url.pathname === "/index.html") {
      [relative, ext] = ["index.html", "html"];
    } else {
      const m = ASSET_PATH_RE.exec(url.pathname);
      if (!m || !(m[2] in CONTENT_TYPES)) return undefined;
      [relative, ext] = [m[1], m[2]];
    }
    const asset = await load(relative, ext);
    if (!asset) return undefined;
    const headers = new Headers({
      "content-type": asset.type,
      "cache-control": "no-cache",
      etag: asset.etag,
      "content-security-policy": UI_CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "x-frame-options": "DENY",
    });
    if (etagMatches(req.headers.get("if-none-match"), asset.etag)) {
      return new Response(null, { status: 304, headers });
    }
    headers.set("content-length", String(asset.body.length));
    return new Response(req.method === "HEAD" ? null : asset.body, { headers });
  };
}

function etagMatches(header: string | null, etag: string): boolean {
  if (!header) return false;
  return header.split(",").some((t) => {
    const tag = t.trim().replace(/^W\//, "");
    return tag === etag || tag === "*";
  });
}
