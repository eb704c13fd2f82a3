import { existsSync } from 'node:fs';
import { CLI } from './cli.js';

export default function setup(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" before the tests`);
}
