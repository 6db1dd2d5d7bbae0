/** No GPU backend could be used; the message says what was tried. */
export class InventoryError extends Error {
  override name = "InventoryError";
}
