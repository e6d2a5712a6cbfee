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
  | { readonly kind: 'config-get' }
  | { readonly kind: 'config-apply'; readonly file: string; readonly yes: boolean }
  | { readonly kind: 'sessions-list'; readonly sub: string }
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
       gatehouse config get [--url URL] [--json]
       gatehouse config apply FILE [--yes] [--url URL] [--json]
       gatehouse sessions list --sub SUB [--url URL] [--json]
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
  config get       the running config.yml (secrets redacted), its version and who made it
  config apply     replace the cluster's config.yml with FILE: shows the difference and asks first (--yes: does
                   not ask); refused (exit 4) when the configuration changed meanwhile or FILE has problems
  sessions list    a user's sessions (--sub SUB): created, last seen, IP and user agent at login
  sessions revoke  end one session everywhere, by its store key (what logs show as \`session\`)
  users revoke     end every session of a user, and every token issued to them before now
  --url URL        the running Gatehouse (default GATEHOUSE_URL, else http://127.0.0.1:8080); the admin
                   token comes from GATEHOUSE_ADMIN_TOKEN, never from the command line
  --json           the server's answer as JSON, for scripts
  -y, --yes        config apply only: apply without asking
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
  yes: { type: 'boolean', short: 'y' },
  sub: { type: 'string' },
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
  const operator = name === 'health' || name === 'sessions' || name === 'users' || name === 'config';
  if (!operator && (values.url !== undefined || values.json))
    throw new UsageError("'--url' and '--json' go with health, config, sessions and users");
  if (operator && (values.config !== undefined || values.connect))
    throw new UsageError("'--config' and '--connect' go with start and check");
  if (operator) {
    const action = operatorAction(positionals, values.sub);
    if (values.yes && action.kind !== 'config-apply') throw new UsageError("'--yes' goes with 'config apply' only");
    if (values.sub !== undefined && action.kind !== 'sessions-list') throw new UsageError("'--sub' goes with 'sessions list' only");
    const withYes = action.kind === 'config-apply' ? { ...action, yes: values.yes === true } : action;
    return { kind: 'operate', action: withYes, url: values.url, json: values.json === true };
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1] ?? ''}'`);
  if (name === 'start') {
    if (values.connect) throw new UsageError("'--connect' goes with 'check' only");
    return { kind: 'start', configPath: values.config };
  }
  if (name === 'check') return { kind: 'check', configPath: values.config, connect: values.connect === true };
  throw new UsageError(`unknown command '${name}'`);
}

function operatorAction(positionals: readonly string[], sub: string | undefined): OperatorAction {
  const [name, verb, subject, extra] = positionals;
  if (name === 'health') {
    if (verb !== undefined) throw new UsageError(`unexpected argument '${verb}'`);
    return { kind: 'health' };
  }
  if (name === 'config') {
    if (verb === 'get') {
      if (subject !== undefined) throw new UsageError(`unexpected argument '${subject}'`);
      return { kind: 'config-get' };
    }
    if (verb !== 'apply') throw new UsageError(`'config' takes 'get' or 'apply', not '${verb ?? ''}'`);
    if (subject === undefined) throw new UsageError("'config apply' needs a FILE");
    if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`);
    return { kind: 'config-apply', file: subject, yes: false };
  }
  if (name === 'sessions' && verb === 'list') {
    if (subject !== undefined) throw new UsageError(`unexpected argument '${subject}' (the user goes in --sub)`);
    if (sub === undefined) throw new UsageError("'sessions list' needs --sub SUB");
    return { kind: 'sessions-list', sub };
  }
  if (verb !== 'revoke')
    throw new UsageError(`'${name ?? ''}' takes ${name === 'sessions' ? "'list' or " : ''}'revoke', not '${verb ?? ''}'`);
  if (subject === undefined) throw new UsageError(`'${name ?? ''} revoke' needs ${name === 'sessions' ? 'a STORE_KEY' : 'a SUB'}`);
  if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`);
  return name === 'sessions' ? { kind: 'revoke-session', storeKey: subject } : { kind: 'revoke-user', sub: subject };
}
