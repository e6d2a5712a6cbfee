import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Settings shared by both nginx instances: their own prefix, pid, logs and temp paths; no daemon; one worker. */
function common(dir: string): string {
  return `worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 8192; }
`;
}

function httpCommon(dir: string): string {
  return `  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  # Defaults close a keep-alive connection after 1000 requests; a load generator would then measure reconnects.
  keepalive_requests 1000000;
  keepalive_timeout 65s;
`;
}

/** nginx config for the fast backend: `return 200` with a small JSON body, no access log. */
export function writeBackendConf(dir: string, port: number): string {
  mkdirSync(dir, { recursive: true });
  // nginx workers run as an unprivileged user when the master is root: they must be able to enter the prefix.
  chmodSync(dir, 0o755);
  const path = join(dir, 'nginx.conf');
  writeFileSync(
    path,
    `${common(dir)}http {
  access_log off;
${httpCommon(dir)}  server {
    listen 127.0.0.1:${port};
    location / {
      default_type application/json;
      return 200 '{"ok":true}\\n';
    }
  }
}
`,
  );
  return path;
}

/**
 * nginx config for the proxy baseline: proxy_pass with upstream keep-alive (HTTP/1.1, Connection cleared),
 * and a buffered access log as a production nginx would keep (Gatehouse logs each request too at info).
 */
export function writeProxyConf(dir: string, port: number, backendPort: number): string {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const path = join(dir, 'nginx.conf');
  writeFileSync(
    path,
    `${common(dir)}http {
  access_log ${join(dir, 'access.log')} combined buffer=64k flush=1s;
${httpCommon(dir)}  upstream backend {
    server 127.0.0.1:${backendPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr;
    }
  }
}
`,
  );
  return path;
}

/** Arguments for `nginx` to run a config from its own prefix (nothing under /etc or /var is touched). */
export function nginxArgs(dir: string, conf: string): string[] {
  return ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')];
}
