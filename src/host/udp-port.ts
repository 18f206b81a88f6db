import { createSocket } from 'node:dgram';

/**
 * True when nothing holds the UDP port on the wildcard address, for IPv4 and for IPv6 (WireGuard
 * binds both). Binds and releases at once; an address family the host lacks counts as free.
 */
export async function isUdpPortFree(port: number): Promise<boolean> {
  return (await canBind('udp4', '0.0.0.0', port)) && (await canBind('udp6', '::', port));
}

function canBind(type: 'udp4' | 'udp6', address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createSocket({ type, ipv6Only: type === 'udp6' });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      sock.close();
      resolve(e.code !== 'EADDRINUSE' && e.code !== 'EACCES');
    });
    sock.bind({ port, address, exclusive: true }, () => {
      sock.close();
      resolve(true);
    });
  });
}
