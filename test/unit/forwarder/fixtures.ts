// Desired states shared by the forwarder unit tests.
import { generatePrivateKey, publicKeyOf } from '../../../src/host/wireguard/index.js';
import type { DesiredState } from '../../../src/forwarder/index.js';
import { SequenceRandom } from '../../../src/host/fake/index.js';

const random = new SequenceRandom('k');
export const localKey = generatePrivateKey(random);
export const peerKey = publicKeyOf(generatePrivateKey(random));
export const otherPeerKey = publicKeyOf(generatePrivateKey(random));

export const device = { name: 'nsm-wg0', privateKey: localKey, listenPort: 51820, mtu: 1420 } as const;

/** A host process and a workload in netns `app` both reach the far side through one peer. */
export const twoConnections: DesiredState = {
  device,
  entries: {
    'c1/wireguard': {
      kind: 'tunnel',
      peerPublicKey: peerKey,
      endpoint: '10.0.0.2:51820',
      remotePrefixes: ['169.254.0.2/32'],
    },
    'c1/kernel': { kind: 'host', addresses: ['169.254.0.1/32'] },
    'c2/wireguard': {
      kind: 'tunnel',
      peerPublicKey: peerKey,
      endpoint: '10.0.0.2:51820',
      remotePrefixes: ['169.254.1.2/32'],
    },
    'c2/kernel': {
      kind: 'netns',
      netns: { kind: 'named', name: 'app' },
      ifName: 'nsm0',
      addresses: ['169.254.1.1/32'],
      routes: ['169.254.1.2/32', '10.60.0.0/16'],
    },
  },
};
