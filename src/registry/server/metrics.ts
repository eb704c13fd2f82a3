/** Prometheus text-format metrics, kept in memory per instance (Prometheus sums over instances). */

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

const escapeLabel = (v: string): string =>
  v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

function labels(l: Record<string, string>): string {
  const keys = Object.keys(l);
  if (keys.length === 0) return '';
  return `{${keys.map((k) => `${k}="${escapeLabel(l[k] ?? '')}"`).join(',')}}`;
}

export function createMetrics() {
  const counters = new Map<string, { help: string; values: Map<string, number> }>();
  const hist = new Map<string, { counts: number[]; sum: number; count: number }>();
  const counter = (name: string, help: string): Map<string, number> => {
    let c = counters.get(name);
    if (!c) {
      c = { help, values: new Map() };
      counters.set(name, c);
    }
    return c.values;
  };
  const inc = (name: string, help: string, l: Record<string, string>, by = 1): void => {
    const v = counter(name, help);
    const key = labels(l);
    v.set(key, (v.get(key) ?? 0) + by);
  };
  // Declare the families up front so that they appear (at zero) from the start.
  counter('deploy_tool_registry_requests_total', 'HTTP requests by method, route and status.');
  counter('deploy_tool_registry_bytes_received_total', 'Bytes received in request bodies and headers.');
  counter('deploy_tool_registry_bytes_sent_total', 'Bytes sent in responses.');
  counter('deploy_tool_registry_downloads_total', 'Archive downloads by namespace and component type.');
  counter(
    'deploy_tool_registry_download_bytes_total',
    'Archive bytes served by namespace and component type.',
  );
  counter('deploy_tool_registry_uploads_total', 'Content uploads by result.');
  counter('deploy_tool_registry_auth_failures_total', 'Authentication and authorization failures by reason.');

  return {
    request(
      method: string,
      route: string,
      status: number,
      seconds: number,
      bytesIn: number,
      bytesOut: number,
    ): void {
      inc('deploy_tool_registry_requests_total', '', { method, route, status: String(status) });
      inc('deploy_tool_registry_bytes_received_total', '', {}, bytesIn);
      inc('deploy_tool_registry_bytes_sent_total', '', {}, bytesOut);
      const key = labels({ route });
      let h = hist.get(key);
      if (!h) {
        h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
        hist.set(key, h);
      }
      BUCKETS.forEach((b, i) => {
        if (seconds <= b && h) h.counts[i] = (h.counts[i] ?? 0) + 1;
      });
      h.sum += seconds;
      h.count++;
    },
    download(namespace: string, type: string, counted: boolean, bytes: number): void {
      if (counted) inc('deploy_tool_registry_downloads_total', '', { namespace, type });
      inc('deploy_tool_registry_download_bytes_total', '', { namespace, type }, bytes);
    },
    upload(result: string): void {
      inc('deploy_tool_registry_uploads_total', '', { result });
    },
    authFailure(reason: string): void {
      inc('deploy_tool_registry_auth_failures_total', '', { reason });
    },
    render(): string {
      const out: string[] = [];
      for (const [name, c] of counters) {
        out.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`);
        if (
          c.values.size === 0 &&
          !name.includes('downloads') &&
          !name.includes('auth') &&
          !name.includes('uploads')
        )
          out.push(`${name} 0`);
        for (const [l, v] of c.values) out.push(`${name}${l} ${v}`);
      }
      const hname = 'deploy_tool_registry_request_duration_seconds';
      out.push(`# HELP ${hname} Request durations by route.`, `# TYPE ${hname} histogram`);
      for (const [key, h] of hist) {
        const inner = key.slice(1, -1);
        BUCKETS.forEach((b, i) => out.push(`${hname}_bucket{${inner},le="${b}"} ${h.counts[i] ?? 0}`));
        out.push(`${hname}_bucket{${inner},le="+Inf"} ${h.count}`);
        out.push(`${hname}_sum{${inner}} ${h.sum}`, `${hname}_count{${inner}} ${h.count}`);
      }
      const mem = process.memoryUsage();
      out.push(
        '# HELP deploy_tool_registry_resident_memory_bytes Resident set size of this instance.',
        '# TYPE deploy_tool_registry_resident_memory_bytes gauge',
        `deploy_tool_registry_resident_memory_bytes ${mem.rss}`,
      );
      return `${out.join('\n')}\n`;
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
