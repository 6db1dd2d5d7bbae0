/** A push-driven async iterable, for turning callback sockets into `for await` streams. */
export class AsyncQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #waiting: ((r: IteratorResult<T>) => void) | null = null;
  #failWaiting: ((e: unknown) => void) | null = null;
  #done = false;
  #error: unknown = undefined;
  #failed = false;

  /** Queues `item` for the reader. */
  push(item: T): void {
    if (this.#done) return;
    if (this.#waiting !== null) {
      const w = this.#waiting;
      this.#waiting = this.#failWaiting = null;
      w({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
  }

  /** Ends the stream after the queued items. */
  end(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#waiting !== null && this.#items.length === 0) {
      const w = this.#waiting;
      this.#waiting = this.#failWaiting = null;
      w({ value: undefined, done: true });
    }
  }

  /** Ends the stream with `error` after the queued items. */
  fail(error: unknown): void {
    if (this.#done) return;
    this.#failed = true;
    this.#error = error;
    this.#done = true;
    if (this.#failWaiting !== null && this.#items.length === 0) {
      const f = this.#failWaiting;
      this.#waiting = this.#failWaiting = null;
      f(error);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.#items.length > 0) return Promise.resolve({ value: this.#items.shift()!, done: false });
        if (this.#done) {
          return this.#failed ? Promise.reject(this.#error) : Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve, reject) => {
          this.#waiting = resolve;
          this.#failWaiting = reject;
        });
      },
    };
  }
}
