import { DeployToolError } from './errors.js';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const MAX_NAME = 128;

function checkCommon(kind: string, value: string): string | undefined {
  if (value.length === 0) return `${kind} is empty`;
  if (value.length > MAX_NAME) return `${kind} is longer than ${MAX_NAME} characters`;
  if (/[/\\]/.test(value)) return `${kind} "${value}" contains a path separator`;
  if (value.includes('..')) return `${kind} "${value}" contains ".."`;
  if (/\s/.test(value)) return `${kind} "${value}" contains whitespace`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) return `${kind} contains a control character`;
  return undefined;
}

/** Component types are user-defined: model, config, python-runtime, ... */
export function validateType(type: string): string {
  const problem = checkCommon('Component type', type);
  if (problem) throw new DeployToolError('ERR_INVALID_NAME', problem, { hint: typeHint });
  if (!NAME_RE.test(type) || type.includes(':')) {
    throw new DeployToolError(
      'ERR_INVALID_NAME',
      `Component type "${type}" has characters that are not allowed`,
      {
        hint: typeHint,
      },
    );
  }
  return type;
}

const typeHint =
  'Use letters, digits, ".", "_" and "-", starting with a letter or digit (for example: model, config, python-runtime).';

/** Versions: semver (1.0.0, 1.0.0-rc.1) or date based (2024.01.20), or any safe token. */
export function validateVersion(version: string, kind = 'Version'): string {
  const problem = checkCommon(kind, version);
  const hint = 'Use a semantic version like 1.0.0 or a date-based one like 2024.01.20.';
  if (problem) throw new DeployToolError('ERR_INVALID_VERSION', problem, { hint });
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(version)) {
    throw new DeployToolError(
      'ERR_INVALID_VERSION',
      `${kind} "${version}" has characters that are not allowed`,
      {
        hint,
      },
    );
  }
  return version;
}

export function validateProjectName(name: string): string {
  const problem = checkCommon('Project name', name);
  if (problem || !NAME_RE.test(name)) {
    throw new DeployToolError(
      'ERR_INVALID_NAME',
      problem ?? `Project name "${name}" has characters that are not allowed`,
      {
        hint: 'Use letters, digits, ".", "_" and "-" (for example: my-ml-project).',
      },
    );
  }
  return name;
}

export interface ComponentRef {
  type: string;
  version: string;
}

/** Parses `TYPE:VERSION`. */
export function parseComponentRef(ref: string): ComponentRef {
  const idx = ref.indexOf(':');
  if (idx <= 0 || idx === ref.length - 1) {
    throw new DeployToolError('ERR_USAGE', `Component "${ref}" is not of the form TYPE:VERSION`, {
      hint: 'Write components as TYPE:VERSION, for example --component model:1.0.0',
    });
  }
  return { type: validateType(ref.slice(0, idx)), version: validateVersion(ref.slice(idx + 1)) };
}

export function componentId(ref: ComponentRef): string {
  return `${ref.type}-${ref.version}`;
}

export function positiveInt(value: string, flag: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new DeployToolError(
      'ERR_USAGE',
      `${flag} must be a whole number from ${min} to ${max}, got "${value}"`,
      { hint: `Pass a whole number from ${min} to ${max} to ${flag}, or leave ${flag} out for the default.` },
    );
  }
  return n;
}

/**
 * Orders strings by UTF-16 code unit, as `sort()` does: right for ISO 8601 timestamps and the same
 * on every machine. `localeCompare` would load ICU's collator on first use (about 15 ms).
 */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
