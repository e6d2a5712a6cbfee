import { reservePort, startGatehouse, type TestGatehouse } from './gatehouse.ts';
import { startIdp, type TestIdp } from './idp.ts';

export interface Stage {
  readonly idp: TestIdp;
  readonly gh: TestGatehouse;
  close(): Promise<void>;
}

/**
 * A test port is found free and then bound later, so a parallel test file's listen(0) can take it in
 * between: retry on EADDRINUSE (start() picks a fresh port each time).
 */
export async function retryOnPortRace<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 5) throw err;
    }
  }
}

/**
 * A real IdP and one Gatehouse registered with it. The IdP's redirect URI must name Gatehouse's port
 * before Gatehouse listens, so a port race means a fresh port and a fresh IdP.
 */
export function startStage(options: {
  idp?: Omit<Parameters<typeof startIdp>[0], 'gatehouseBaseUrls'>;
  gatehouse?: Omit<Parameters<typeof startGatehouse>[0], 'idp' | 'port'>;
} = {}): Promise<Stage> {
  return retryOnPortRace(async () => {
    const { port, url } = await reservePort();
    const idp = await startIdp({ ...options.idp, gatehouseBaseUrls: [url] });
    try {
      const gh = await startGatehouse({ ...options.gatehouse, idp, port });
      return {
        idp, gh,
        async close() {
          await gh.close();
          await idp.close();
        },
      };
    } catch (err) {
      await idp.close();
      throw err;
    }
  });
}
