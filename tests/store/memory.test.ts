import { createMemoryStore } from '../../src/store/memory.ts';
import { storeConformance } from './conformance.ts';

// An injected clock: expiry cases step it instead of waiting. One process is the only replica.
storeConformance('memory', async () => {
  let clock = 1_000_000;
  const store = createMemoryStore({ now: () => clock });
  return {
    store,
    elapse: async (ms) => {
      clock += ms;
    },
    replica: async () => store,
    close: () => store.close(),
  };
});
