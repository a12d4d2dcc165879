/**
 * A confirmation dialog on the native <dialog> element: modal, closes on Escape, starts
 * on the harmless button and gives focus back to what opened it.
 */

import { h, uid } from "./dom.js";

/**
 * Asks a yes/no question; resolves true when confirmed. `action` words the confirming
 * button ("Delete"); `danger` styles it as destructive.
 */
export function confirmDialog({ title, message, action, danger = false }) {
  const opener = document.activeElement;
  const titleId = uid("dialog-title");
  const textId = uid("dialog-text");
  return new Promise((resolve) => {
    const cancel = h("button", { type: "button", value: "cancel" }, "Cancel");
    const confirm = h(
      "button",
      { type: "button", class: danger ? "danger" : "primary", value: "confirm" },
      action,
    );
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": titleId, "aria-describedby": textId },
      h("h2", { id: titleId }, title),
      h("p", { id: textId }, message),
      h("div", { class: "actions" }, cancel, confirm),
    );
    cancel.addEventListener("click", () => dialog.close("cancel"));
    confirm.addEventListener("click", () => dialog.close("confirm"));
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(dialog.returnValue === "confirm");
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
