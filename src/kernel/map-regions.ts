import { readdirSync } from 'node:fs';
import { CHUNK_QUEUED } from '../backends/shm/mailbox-layout.js';
import { IpcError } from '../errors.js';
import { MAX_MAP_CHUNK_BYTES, MAX_MAP_CHUNKS, MapRegion, mapAvailable } from '../map/map-region.js';
import { Segment } from '../shm/segment.js';
import { Chunk, Frame } from '../wire/frame-codec.js';
import type { MapRegionInfo } from '../wire/info-types.js';
import { MAP_REF_BYTES, SendFlag } from '../wire/protocol.js';
import type { Session } from './session.js';

/**
 * The kernel's side of map (large payloads by reference, protocol 3): the map
 * regions processes registered (`map.register`), and who refers to which chunk.
 *
 * A chunk is referred to by at most one kernel message (the SEND that named
 * it; broadcast copies share that message) and by every receiver it was lent
 * to (a MAPPED DELIVER, until UNMAP, RELEASE or the receiver's end). It goes
 * back to its region's free ring when the last reference goes, never before:
 * no chunk is reused under a live view or a queued message. A region whose
 * owner has gone stays mapped and named while references remain, so its
 * queued messages are still delivered; then the kernel unlinks it.
 *
 * Invariants: `refs[c]` is 1 (the message) + the lends of chunk c while a
 * message holds it; `region.live` is the sum of `refs`; a session's `lends`
 * name only chunks with refs > 0.
 */

/** A kernel message's payload in a map region: chunk `chunk`, `length` bytes. */
export class MappedPayload {
  constructor(
    readonly region: RegionRecord,
    readonly chunk: number,
    readonly length: number,
  ) {}

  /** The bytes, as a view of the kernel's own mapping (copy them before they outlive this reference). */
  view(): Buffer {
    return this.region.map.view(this.chunk, this.length);
  }
}

export class RegionRecord {
  /** References per chunk (the message, plus one per lend). */
  readonly refs: Int32Array;
  /** References in all chunks. */
  live = 0;
  /** Its owner's session ended (or it unregistered): it goes once `live` is 0. */
  ownerGone = false;
  /** Sessions it lent chunks to, told when it goes (they drop their mapping). */
  readonly lentTo = new Set<Session>();
  /** Sessions that could not open it (UNMAP REFUSE): they get its payloads by copy. */
  readonly refusedBy = new Set<Session>();
  /** The kernel found it cut short (MapRegion.damaged) and told `onDamaged`. */
  damageSeen = false;
  /** The reference in a MAPPED DELIVER after the three u32s: the name, UTF-8. */
  readonly nameBytes: Buffer;

  constructor(
    readonly id: number,
    readonly owner: Session,
    readonly map: MapRegion,
    private readonly tell: (r: RegionRecord) => void,
  ) {
    this.refs = new Int32Array(map.chunks);
    this.nameBytes = Buffer.from(map.name, 'utf8');
  }

  /**
   * After the kernel read this region's memory: was it cut short? (The read itself survived:
   * the mapping is guarded and now reads zeros.) The first time, MapRegions.onDamaged hears
   * of it from a later turn, never inside the delivery or release that noticed it. Receivers
   * got zeros for its payloads, as they would had the owner overwritten its own queued
   * chunks; nobody else's messages are touched.
   */
  check(): boolean {
    if (!this.map.damaged) return false;
    if (!this.damageSeen) {
      this.damageSeen = true;
      setImmediate(() => this.tell(this));
    }
    return true;
  }
}

/**
 * Unlink the map regions of this user whose creating process is dead (`ipcbox-map-<pid>-…` in
 * /dev/shm): a kernel unlinks a region once nothing refers to it, but a kernel that is killed
 * leaves those of senders that had already gone. A live kernel still holding such a region
 * keeps its own mapping and delivers from it by copy (a receiver that cannot open it refuses
 * the lend). Linux only (elsewhere there is no /dev/shm to list): a no-op there.
 */
export function reapMapRegions(): void {
  let names: string[];
  try {
    names = readdirSync('/dev/shm');
  } catch {
    return;
  }
  const uid = process.getuid?.();
  for (const name of names) {
    const m = /^ipcbox-map-(\d+)-[0-9a-f]+$/.exec(name);
    if (m === null || processAlive(Number(m[1]))) continue;
    try {
      if (Segment.stat(name).uid === uid) Segment.unlink(name);
    } catch {
      // Gone meanwhile, or not ours to remove.
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Regions one process may register. */
const MAX_REGIONS_PER_SESSION = 4;

export class MapRegions {
  /** False when the addon does not load here: WELCOME offers no MAP, every send is a copy. */
  readonly enabled = mapAvailable();
  readonly byId = new Map<number, RegionRecord>();
  private nextId = 1;
  /**
   * A region was found cut short (its file truncated): the kernel ends its owner's session.
   * Called from a later turn, never inside the delivery or release that noticed it.
   */
  onDamaged: (r: RegionRecord) => void = () => {};

  /** `map.register {name}`: map a region the caller created, owned by its uid. */
  register(s: Session, name: string): RegionRecord {
    if (!this.enabled) throw new IpcError('NATIVE_UNAVAILABLE', 'this kernel cannot map regions');
    if (s.remoteNode !== undefined || s.credentials === undefined)
      throw new IpcError('NOT_SUPPORTED', 'map regions are for processes on this host');
    if (!/^ipcbox-map-[0-9]+-[0-9a-f]+$/.test(name)) throw new TypeError(`not a map region name: ${name}`);
    let owned = 0;
    for (const r of this.byId.values()) if (r.owner === s && !r.ownerGone) owned++;
    if (owned >= MAX_REGIONS_PER_SESSION)
      throw new IpcError('KERNEL_FULL', `${s.name} already has ${MAX_REGIONS_PER_SESSION} map regions`);
    const st = Segment.stat(name);
    if (st.uid !== s.uid || (st.mode & 0o077) !== 0)
      throw new IpcError('PERMISSION_DENIED', `map region ${name} must be ${s.name}'s own, mode 0600`);
    const map = MapRegion.open(name);
    if (map.chunks > MAX_MAP_CHUNKS || map.chunkBytes > MAX_MAP_CHUNK_BYTES) {
      map.close();
      throw new RangeError(
        `map region ${name} is larger than ${MAX_MAP_CHUNKS} chunks of ${MAX_MAP_CHUNK_BYTES} bytes`,
      );
    }
    const rec = new RegionRecord(this.nextId++, s, map, (r) => this.onDamaged(r));
    this.byId.set(rec.id, rec);
    return rec;
  }

  /**
   * A MAPPED SEND's reference from `s`: the payload it names, now the
   * message's; or the reason it is a protocol violation.
   */
  take(s: Session, regionId: number, chunk: number, length: number): MappedPayload | string {
    const r = this.byId.get(regionId);
    if (r === undefined || r.owner !== s || r.ownerGone) return `no map region ${regionId} of ${s.name}`;
    if (chunk >= r.map.chunks) return `chunk ${chunk} is outside map region ${regionId}`;
    if (length > r.map.chunkBytes) return `${length} bytes do not fit a chunk of map region ${regionId}`;
    if (r.refs[chunk] !== 0) return `chunk ${chunk} of map region ${regionId} is still in use`;
    const state = Atomics.load(r.map.states, chunk);
    // A truncated region reads zeros (it is guarded), so its states would say "not queued":
    // name the real fault.
    if (r.map.damaged) {
      r.damageSeen = true;
      return `map region ${regionId} was cut short (its file truncated)`;
    }
    if (state !== CHUNK_QUEUED) return `chunk ${chunk} of map region ${regionId} was not marked queued`;
    r.refs[chunk] = 1;
    r.live++;
    return new MappedPayload(r, chunk, length);
  }

  /**
   * A MAPPED SEND that must travel as bytes (to a mailbox on another node): the same frame with
   * the payload copied in and the flag cleared; the chunk goes back at once.
   */
  materialize(s: Session, f: Frame): Frame | string {
    const off = (f.flags & SendFlag.TIMED) !== 0 && f.reqId !== 0 ? 4 : 0;
    if (f.bodyLength - off !== MAP_REF_BYTES)
      return `a MAPPED SEND carries a ${MAP_REF_BYTES}-byte reference`;
    const p = this.take(s, f.u32(off), f.u32(off + 4), f.u32(off + 8));
    if (typeof p === 'string') return p;
    const body = Buffer.allocUnsafe(off + p.length);
    f.buf.copy(body, 0, f.start, f.start + off);
    p.view().copy(body, off);
    p.region.check();
    this.drop(p);
    const out = new Frame();
    out.op = f.op;
    out.flags = f.flags & ~SendFlag.MAPPED;
    out.priority = f.priority;
    out.codec = f.codec;
    out.reqId = f.reqId;
    out.target = f.target;
    out.buf = body;
    out.chunk = new Chunk(body);
    out.start = 0;
    out.end = body.length;
    return out;
  }

  /** Lend the message's chunk to receiver `s` as delivery `deliveryId`. */
  lend(s: Session, deliveryId: number, p: MappedPayload): void {
    const r = p.region;
    (r.refs[p.chunk] as number)++;
    r.live++;
    r.lentTo.add(s);
    s.lends.set(deliveryId, p);
  }

  /** Receiver `s` could not open the region of delivery `deliveryId`'s lend: copies from it from now on. */
  refused(s: Session, deliveryId: number): void {
    s.lends.get(deliveryId)?.region.refusedBy.add(s);
  }

  /** Delivery `deliveryId`'s lend came back (UNMAP, RELEASE); false if it had none. */
  unlend(s: Session, deliveryId: number): boolean {
    const p = s.lends.get(deliveryId);
    if (p === undefined) return false;
    s.lends.delete(deliveryId);
    this.drop(p);
    return true;
  }

  /** One reference to `p`'s chunk is gone; the last frees it (or, the owner gone, the region). */
  drop(p: MappedPayload): void {
    const r = p.region;
    const left = --(r.refs as Int32Array)[p.chunk]!;
    r.live--;
    // A cut-short region's free ring is zeros now: nothing goes back to it.
    if (left === 0 && !r.ownerGone && !r.check()) r.map.slab.release(p.chunk);
    if (r.ownerGone && r.live === 0) this.remove(r);
  }

  /** A session ended: its lends come back, its regions go once nothing refers to them. */
  sessionEnded(s: Session): void {
    const lends = [...s.lends.values()];
    s.lends.clear();
    for (const p of lends) this.drop(p);
    for (const r of [...this.byId.values()]) {
      r.lentTo.delete(s);
      r.refusedBy.delete(s);
      if (r.owner !== s || r.ownerGone) continue;
      r.ownerGone = true;
      if (r.live === 0) this.remove(r);
    }
  }

  /** Regions and their use, for `status`. */
  describe(): MapRegionInfo[] {
    return [...this.byId.values()].map((r) => {
      let inUse = 0;
      for (const n of r.refs) if (n > 0) inUse++;
      return {
        id: r.id,
        name: r.map.name,
        owner: r.owner.name,
        chunks: r.map.chunks,
        chunkBytes: r.map.chunkBytes,
        inUse,
        ownerGone: r.ownerGone,
      };
    });
  }

  /** The kernel stops: every region goes (the messages that named them go with it). */
  removeAll(): void {
    for (const r of [...this.byId.values()]) this.remove(r);
  }

  private remove(r: RegionRecord): void {
    this.byId.delete(r.id);
    r.map.unlink();
    r.map.close();
    for (const s of r.lentTo) if (!s.closed) s.sendNotice({ kind: 'map-region-closed', id: r.id });
    r.lentTo.clear();
  }
}
