/** Library code never prints: it reports progress and steps through these callbacks. */
export interface ProgressEvent {
  /** What is being done: "pack", "verify", "extract", "upload", "download", ... */
  phase: string;
  /** Which item (component id, file), if any. */
  item?: string;
  done: number;
  total: number;
  unit: 'bytes' | 'items';
}

export interface Reporter {
  onProgress?: (event: ProgressEvent) => void;
  /** Step-by-step messages, shown with --verbose. */
  onLog?: (message: string) => void;
  /** Non-fatal problems, always shown (unless --quiet). */
  onWarning?: (message: string) => void;
}

export interface CommonOptions extends Reporter {
  /** Folder the command runs in; the project root is found by walking up from here. */
  cwd: string;
  /** Explicit project root (--project-root). */
  projectRoot?: string | undefined;
}

export function timed<T>(
  log: ((m: string) => void) | undefined,
  label: string,
  fn: () => Promise<T>,
): Promise<T> {
  if (!log) return fn();
  const t0 = performance.now();
  return fn().then((r) => {
    log(`${label} (${(performance.now() - t0).toFixed(1)} ms)`);
    return r;
  });
}
