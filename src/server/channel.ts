/**
 * A minimal async queue: producers push values (or an end / an error), one consumer iterates. Used to turn
 * worker messages into the AsyncIterable a streaming response reads from.
 */
export class Channel<T> implements AsyncIterable<T> {
  private values: T[] = [];
  private waiting: ((result: IteratorResult<T>) => void) | null = null;
  private failWaiting: ((error: unknown) => void) | null = null;
  private done = false;
  private error: unknown = null;

  push(value: T): void {
    if (this.done) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = this.failWaiting = null;
      resolve({ value, done: false });
    } else {
      this.values.push(value);
    }
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    this.waiting?.({ value: undefined as never, done: true });
    this.waiting = this.failWaiting = null;
  }

  fail(error: unknown): void {
    if (this.done) return;
    this.error = error;
    this.done = true;
    this.failWaiting?.(error);
    this.waiting = this.failWaiting = null;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.values.length > 0) return Promise.resolve({ value: this.values.shift()!, done: false });
        if (this.error) return Promise.reject(this.error);
        if (this.done) return Promise.resolve({ value: undefined as never, done: true });
        return new Promise((resolve, reject) => {
          this.waiting = resolve;
          this.failWaiting = reject;
        });
      },
      return: () => {
        this.done = true;
        this.values = [];
        return Promise.resolve({ value: undefined as never, done: true });
      },
    };
  }
}
