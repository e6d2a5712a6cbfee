import { parseArgs } from 'node:util';

/** What the command line asks for. */
export type Command =
  | { readonly kind: 'start'; readonly configPath: string | undefined }
  | { readonly kind: 'check'; readonly configPath: string | undefined; readonly connect: boolean }
  | { readonly kind: 'help' }
  | { readonly kind: 'version' };

/** A command line Gatehouse does not understand: printed with the usage, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const USAGE = `usage: gatehouse [start] [--config FILE]
       gatehouse check [--config FILE] [--connect]
       gatehouse --version | --help

  start            run Gatehouse (what \`npm start\` runs; the default)
  check            validate the environment and config.yml exactly as start-up would, print the routing
                   it would serve, and exit non-zero on any problem; nothing is started and, without
                   --connect, nothing is reached over the network
  --config FILE    config.yml to use (overrides GATEHOUSE_CONFIG)
  --connect        check only: also reach Redis (REDIS_URL) and the IdP's discovery document, and report each
  -h, --help       this text
  -v, --version    the version

exit codes: 0 ok, 1 configuration problems, 2 usage error, 3 a dependency --connect could not reach
`;

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  connect: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

/**
 * The command line, strictly: an unknown flag or command is an error, never ignored (`--check` once started
 * the server as if nothing had been said).
 */
export function parseCommand(argv: readonly string[]): Command {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1] ?? ''}'`);
  const name = positionals[0] ?? 'start';
  if (name === 'start') {
    if (values.connect) throw new UsageError("'--connect' goes with 'check' only");
    return { kind: 'start', configPath: values.config };
  }
  if (name === 'check') return { kind: 'check', configPath: values.config, connect: values.connect === true };
  throw new UsageError(`unknown command '${name}'`);
}
