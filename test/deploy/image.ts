/** The Dockerfile read as data, and its last stage laid out here as the image would hold it. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './sources.ts';

export type Dockerfile = Readonly<{ nodeVersion: string; env: Record<string, string>; user: string; cmd: string[]; healthcheck: string[]; finalCopies: string[]; installs: string[] }>;

export function readDockerfile(): Dockerfile {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n\s*/g, ' ');
  const lines = text.split('\n').filter((line) => line.trim() && !line.trimStart().startsWith('#'));
  const stages = lines.join('\n').split(/^FROM /m);
  const last = (stages.at(-1) ?? '').split('\n');
  const json = (line: string | undefined) => JSON.parse(line ?? '[]') as string[];
  const env: Record<string, string> = {};
  for (const line of last.filter((l) => l.startsWith('ENV '))) for (const m of line.slice(4).matchAll(/(\w+)=(\S+)/g)) env[m[1] ?? ''] = m[2] ?? '';
  return {
    nodeVersion: /^ARG NODE_VERSION=(\S+)/m.exec(text)?.[1] ?? '',
    env,
    user: last.find((l) => l.startsWith('USER '))?.slice(5).trim() ?? '',
    cmd: json(last.find((l) => l.startsWith('CMD '))?.slice(4)),
    healthcheck: json(/HEALTHCHECK .*?CMD (\[.*\])/.exec(last.join('\n'))?.[1]),
    finalCopies: last.filter((l) => l.startsWith('COPY ')).map((l) => l.slice(5).trim()),
    installs: lines.filter((l) => l.startsWith('RUN npm ')),
  };
}

/**
 * /app of the image: package.json, src/ and the production packages of package-lock.json
 * (those not marked dev), linked (or copied) into a folder outside the repository, whose
 * parents hold no node_modules: a module a role needs from a devDependency fails to load here
 * as it would in the image.
 */
export function layOutImage(): Readonly<{ dir: string; packages: number; remove(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'orderly-image-'));
  // Hard links where the temporary folder is on the repository's file system, copies elsewhere.
  const copy = (...paths: string[]) => {
    try {
      execFileSync('cp', ['-al', ...paths], { stdio: 'pipe' });
    } catch {
      execFileSync('cp', ['-a', ...paths]);
    }
  };
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; link?: boolean }> };
  // Top-level packages only: a nested one comes with its parent's folder.
  const production = Object.entries(lock.packages).filter(([path, p]) => path.startsWith('node_modules/') && !path.slice(13).includes('/node_modules/') && !p.dev).map(([path]) => path);
  for (const path of production) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    copy(join(ROOT, path), join(dir, path));
  }
  copy(join(ROOT, 'src'), join(ROOT, 'package.json'), dir);
  return { dir, packages: production.length, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
