/**
 * -vv: the text protocol echoes commands and replies as memcached 1.6.45 does ("<fd command",
 * ">fd reply", ">fd NOREPLY reply", ">fd sending key k", ">fd END"; no reply echo for delete,
 * incr, touch and the meta commands); nothing at -v.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Client, waitFor } from '../net/harness';
import { startFullServer, type FullServer } from '../metrics/full-server';

let server: FullServer | null = null;
let client: Client | null = null;
afterEach(async () => {
  client?.destroy();
  await server?.stop();
  server = client = null;
});

async function exchange(verbose: number): Promise<{ id: number; logs: string[] }> {
  server = await startFullServer({ verbose });
  client = new Client(server.port);
  await client.connected();
  await client.send('set foo 0 0 3\r\nbar\r\nset q 0 0 1 noreply\r\nx\r\nget foo nope\r\ndelete nope\r\n');
  await waitFor(() => client!.text().endsWith('NOT_FOUND\r\n'), 5000, () => client!.text());
  const id = [...server.network.connections()].at(-1)?.id as number;
  return { id, logs: server.logs };
}

describe('-vv echo', () => {
  it('prints each command and reply as memcached -vv does', async () => {
    const { id, logs } = await exchange(2);
    const echo = logs.filter((l) => l.startsWith(`<${id} `) || l.startsWith(`>${id} `));
    expect(echo).toEqual([
      `<${id} new auto-negotiating client connection`,
      `<${id} set foo 0 0 3`,
      `>${id} STORED`,
      `<${id} set q 0 0 1 noreply`,
      `>${id} NOREPLY STORED`,
      `<${id} get foo nope`,
      `>${id} sending key foo`,
      `>${id} END`,
      // memcached 1.6.45 echoes no reply of its request parser's commands (delete, incr, ...)
      `<${id} delete nope`,
    ]);
  });

  it('prints none of it at -v', async () => {
    const { id, logs } = await exchange(1);
    expect(logs.filter((l) => l.startsWith(`<${id} `) || l.startsWith(`>${id} `))).toEqual([]);
  });
});
