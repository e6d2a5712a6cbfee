import { parseArgs } from 'node:util';

/** What the command line asks for. */
export type Command =
  | { readonly kind: 'start'; readonly configPath: string | undefined }
  | { readonly kind: 'check'; readonly configPath: string | undefined; readonly connect: boolean }
  | { readonly kind: 'help' }
  | { readonly kind: 'version' }
  | { readonly kind: 'operate'; readonly action: OperatorAction; readonly url: string | undefined; readonly json: boolean };

/** What an operator command asks of a running Gatehouse (over /readyz and the admin API). */
export type OperatorAction =
  | { readonly kind: 'health' }
  | { readonly kind: 'revoke-session'; readonly storeKey: string }
  | { readonly kind: 'revoke-user'; readonly sub: string };

/** A command line Gatehouse does not understand: printed with the usage, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const USAGE = `usage: gatehouse [start] [--config FILE]
       gatehouse check [--config FILE] [--connect]
       gatehouse health [--url URL] [--json]
       gatehouse sessions revoke STORE_KEY [--url URL] [--json]
       gatehouse users revoke SUB [--url URL] [--json]
       gatehouse --version | --help

  start            run Gatehouse (what \`npm start\` runs; the default)
  check            validate the environment and config.yml exactly as start-up would, print the routing
                   it would serve, and exit non-zero on any problem; nothing is started and, without
                   --connect, nothing is reached over the network
  --config FILE    config.yml to use (overrides GATEHOUSE_CONFIG)
  --connect        check only: also reach Redis (REDIS_URL) and the IdP's discovery document, and report each
  health           a running Gatehouse's readiness (GET /readyz) and each check
  sessions revoke  end one session everywhere, by its store key (what logs show as \`session\`)
  users revoke     end every session of a user, and every token issued to them before now
  --url URL        the running Gatehouse (default GATEHOUSE_URL, else http://127.0.0.1:8080); the admin
                   token comes from GATEHOUSE_ADMIN_TOKEN, never from the command line
  --json           the server's answer as JSON, for scripts
  -h, --help       this text
  -v, --version    the version

exit codes: 0 ok, 1 configuration problems, 2 usage error, 3 a dependency or the server could not be
            reached, 4 the server answered with an error (not ready, refused, unknown)
`;

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  connect: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  url: { type: 'string' },
  json: { type: 'boolean' },
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
  const name = positionals[0] ?? 'start';
  const operator = name === 'health' || name === 'sessions' || name === 'users';
  if (!operator && (values.url !== undefined || values.json))
    throw new UsageError("'--url' and '--json' go with health, sessions and users");
  if (operator && (values.config !== undefined || values.connect))
    throw new UsageError("'--config' and '--connect' go with start and check");
  if (operator) return { kind: 'operate', action: operatorAction(positionals), url: values.url, json: values.json === true };
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1] ?? ''}'`);
  if (name === 'start') {
    if (values.connect) throw new UsageError("'--connect' goes with 'check' only");
    return { kind: 'start', configPath: values.config };
  }
  if (name === 'check') return { kind: 'check', configPath: values.config, connect: values.connect === true };
  throw new UsageError(`unknown command '${name}'`);
}

function operatorAction(positionals: readonly string[]): OperatorAction {
  const [name, verb, subject, extra] = positionals;
  if (name === 'health') {
    if (verb !== undefined) throw new UsageError(`unexpected argument '${verb}'`);
    return { kind: 'health' };
  }
  if (verb !== 'revoke') throw new UsageError(`'${name ?? ''}' takes 'revoke', not '${verb ?? ''}'`);
  if (subject === undefined) throw new UsageError(`'${name ?? ''} revoke' needs ${name === 'sessions' ? 'a STORE_KEY' : 'a SUB'}`);
  if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`);
  return name === 'sessions' ? { kind: 'revoke-session', storeKey: subject } : { kind: 'revoke-user', sub: subject };
}
