/** Actions more than one screen offers: deleting a function (after confirmation). */

import { api } from "./api.js";
import { announce } from "./dom.js";
import { confirmDialog } from "./dialog.js";

/**
 * Asks, then deletes `name`. Resolves true when deleted, false when the user cancelled;
 * rejects with an ApiError in plain words when the API refused.
 */
export async function deleteFunction(name) {
  const ok = await confirmDialog({
    title: `Delete function "${name}"?`,
    message:
      "Its instances stop and its endpoint stops answering. Keep a copy of its YAML manifest if you may want it back.",
    action: "Delete function",
    danger: true,
  });
  if (!ok) return false;
  await api(`/functions/${encodeURIComponent(name)}`, { method: "DELETE" });
  announce(`Function ${name} deleted.`);
  return true;
}
