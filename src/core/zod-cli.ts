/**
 * zod settings for the CLI. A command parses a few small documents once each, so zod's generated
 * fast path would cost more to compile than it saves (about 6 ms per schema on first use). Its own
 * module, importing zod as a namespace, so that the bundle keeps only the parts of zod we use.
 */
import * as z from 'zod';

export function configureZodForCli(): void {
  z.config({ jitless: true });
}
