/** Largest amount, price, quantity, stock or credit: the largest integer JSON and JavaScript hold exactly. */
export const MAX_AMOUNT = Number.MAX_SAFE_INTEGER;
/** Longest id accepted in a URL. */
export const MAX_ID_LENGTH = 64;
/** Most entities a batch_init call may create. */
export const MAX_BATCH = 1_000_000;
/** Most lines an order created through the lifecycle API may have. */
export const MAX_LINES = 100;
