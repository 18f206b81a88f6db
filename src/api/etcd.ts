// etcd v3 wire types (our subset of upstream's etcdserverpb/mvccpb, src/api/proto/etcd) for the
// etcd store. Kept out of api/index.ts: only src/store speaks etcd.
export {
  CompactionRequestSchema,
  CompareSchema,
  Compare_CompareResult,
  Compare_CompareTarget,
  KV,
  Lease,
  RequestOpSchema,
  Watch,
} from './gen/etcd/rpc_pb.js';
export type {
  Compare,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  TxnResponse,
  WatchResponse,
} from './gen/etcd/rpc_pb.js';
export { Event_EventType } from './gen/etcd/kv_pb.js';
export type { Event as EtcdEvent, KeyValue as EtcdKeyValue } from './gen/etcd/kv_pb.js';
