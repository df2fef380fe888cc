/**
 * scripts/raid0-for-extstore.sh in --dry-run mode only: it prints the mdadm, mkfs and mount
 * commands it would run and the ext_path to use, and checks its arguments. It is never run
 * for real by the tests.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const SCRIPT = path.resolve(__dirname, '..', '..', 'scripts', 'raid0-for-extstore.sh');

function dryRun(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', [SCRIPT, '--dry-run', ...args], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('raid0-for-extstore.sh --dry-run', () => {
  it('prints mdadm, mkfs and mount for the given devices, then the ext_path', () => {
    const r = dryRun(['--fs', 'xfs', '/dev/nvme-test-a', '/dev/nvme-test-b']);
    expect(r.status).toBe(0);
    const commands = r.stdout.split('\n').filter((l) => l.startsWith('+ '));
    expect(commands).toEqual([
      '+ mdadm --create /dev/md0 --level=0 --raid-devices=2 --chunk=512K /dev/nvme-test-a /dev/nvme-test-b --run',
      '+ mkfs.xfs -f /dev/md0',
      '+ mkdir -p /mnt/extstore',
      '+ mount -o noatime,nodiratime /dev/md0 /mnt/extstore',
    ]);
    expect(r.stdout).toMatch(/^ext_path=\/mnt\/extstore\/extstore:/m);
    expect(r.stderr).toContain('/dev/nvme-test-a is not a block device');
  });

  it('honours --md, --mount, --fs ext4, --chunk, --file and --use-pct', () => {
    const r = dryRun(['--md', '/dev/md7', '--mount', '/srv/flash', '--fs', 'ext4', '--chunk', '1M', '--file', 'mc',
      '--use-pct', '50', '/dev/nvme-test-a']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('+ mdadm --create /dev/md7 --level=0 --raid-devices=1 --chunk=1M /dev/nvme-test-a --run');
    expect(r.stdout).toContain('+ mkfs.ext4 -F -E lazy_itable_init=1,lazy_journal_init=1 /dev/md7');
    expect(r.stdout).toContain('+ mount -o noatime,nodiratime /dev/md7 /srv/flash');
    expect(r.stdout).toContain('ext_path=/srv/flash/mc:<50% of the array, in G>');
  });

  it('refuses bad arguments', () => {
    expect(dryRun([]).status).not.toBe(0);
    expect(dryRun(['--use-pct', '0', '/dev/x']).stderr).toContain('--use-pct must be from 1 to 100');
    expect(dryRun(['--fs', 'zfs', '/dev/x']).stderr).toContain('--fs must be xfs or ext4');
    expect(dryRun(['--bogus', '/dev/x']).stderr).toContain('unknown option --bogus');
  });
});
