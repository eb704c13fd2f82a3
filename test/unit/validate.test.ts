import { describe, expect, it } from 'vitest';
import { DeployToolError } from '../../src/core/errors.js';
import {
  componentId,
  parseComponentRef,
  positiveInt,
  validateProjectName,
  validateType,
  validateVersion,
} from '../../src/core/validate.js';

function code(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(DeployToolError);
    expect((err as DeployToolError).hint).toBeTruthy();
    return (err as DeployToolError).code;
  }
  return 'accepted';
}

describe('component types', () => {
  it.each(['model', 'config', 'runtime', 'python-runtime', 'cuda_libs', 'data.v2', 'M0del'])(
    'accepts %j',
    (t) => {
      expect(validateType(t)).toBe(t);
    },
  );

  it.each([
    '',
    '../x',
    'a/b',
    'a\\b',
    '..',
    'a..b',
    'has space',
    'tab\t',
    '-lead',
    '.hidden',
    'a:b',
    'x'.repeat(129),
    'nul\0',
  ])('refuses %j', (t) => {
    expect(code(() => validateType(t))).toBe('ERR_INVALID_NAME');
  });
});

describe('versions', () => {
  it.each(['1.0.0', '3.10.0', '1.0.0-rc.1', '1.0.0+build.5', '2024.01.20', 'v2', '20240120'])(
    'accepts %j',
    (v) => {
      expect(validateVersion(v)).toBe(v);
    },
  );

  it.each(['', '../1', '1/0', '1..0', '1.0 ', ' 1.0', '1\n', '-1', 'a:b', 'x'.repeat(129)])(
    'refuses %j',
    (v) => {
      expect(code(() => validateVersion(v))).toBe('ERR_INVALID_VERSION');
    },
  );

  it('names what it validates in the message', () => {
    expect(() => validateVersion('a/b', 'Release version')).toThrow(
      /^Release version "a\/b" contains a path separator/,
    );
  });
});

describe('project names', () => {
  it('accepts the seed README example and refuses separators and spaces', () => {
    expect(validateProjectName('my-ml-project')).toBe('my-ml-project');
    expect(code(() => validateProjectName('my project'))).toBe('ERR_INVALID_NAME');
    expect(code(() => validateProjectName('../p'))).toBe('ERR_INVALID_NAME');
    expect(code(() => validateProjectName(''))).toBe('ERR_INVALID_NAME');
  });
});

describe('TYPE:VERSION references', () => {
  it('parses a reference and builds the id used in file names', () => {
    const ref = parseComponentRef('model:1.0.0');
    expect(ref).toEqual({ type: 'model', version: '1.0.0' });
    expect(componentId(ref)).toBe('model-1.0.0');
    expect(parseComponentRef('python-runtime:3.10.12')).toEqual({
      type: 'python-runtime',
      version: '3.10.12',
    });
  });

  it.each(['model', ':1.0.0', 'model:', 'model:1:2'])('refuses %j', (r) => {
    expect(code(() => parseComponentRef(r))).toMatch(/ERR_USAGE|ERR_INVALID_VERSION/);
  });

  it('refuses unsafe parts', () => {
    expect(code(() => parseComponentRef('../model:1.0.0'))).toBe('ERR_INVALID_NAME');
    expect(code(() => parseComponentRef('model:../1'))).toBe('ERR_INVALID_VERSION');
  });
});

describe('numeric flags', () => {
  it('accepts whole numbers in range and refuses the rest with a usage error', () => {
    expect(positiveInt('19', '--level', 0, 22)).toBe(19);
    for (const bad of ['x', '1.5', '-1', '23', '', '1e1', '0x3'])
      expect(code(() => positiveInt(bad, '--level', 0, 22))).toBe('ERR_USAGE');
  });
});
