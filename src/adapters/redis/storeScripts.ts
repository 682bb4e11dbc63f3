import { script } from './script.ts';

/** The keys of one store, all under its prefix; every script gets them in this order. */
export function storeKeys(prefix: string) {
  return {
    /** hash: document key → JSON */
    docs: `${prefix}docs`,
    /** hash: document key → version (the number of the commit that last wrote it) */
    versions: `${prefix}versions`,
    /** sorted set, all scores 0: document keys, so that scan pages in key order (ZRANGE BYLEX) */
    index: `${prefix}index`,
    /** sorted set: consumed message id → server time in ms when it was consumed */
    inbox: `${prefix}inbox`,
    /** hash: outbox message id → envelope JSON */
    outbox: `${prefix}outbox`,
    /** sorted set: outbox message id → sequence number, for oldest first */
    order: `${prefix}outbox:order`,
    /** counter: commit and outbox sequence numbers */
    seq: `${prefix}seq`,
    /** hash: JSON [consumer, message id] → JSON { consumer, error, envelope, at } */
    dead: `${prefix}dead`,
    /** string: version of this layout, checked at open */
    layout: `${prefix}layout`,
  };
}

export type StoreKeys = ReturnType<typeof storeKeys>;

/**
 * Lua: `call(command, key, args, each, first, last)` runs `command key args[first..last]`
 * (default: all of args) in slices that stay far below Lua's limit on unpacked values, and
 * calls `each(i, item)` with the replies' items, i = 1 for the item of args[first].
 */
const SLICED_CALL = `local function call(command, key, args, each, first, last)
  first, last = first or 1, last or #args
  for from = first, last, 1000 do
    local reply = redis.call(command, key, unpack(args, from, math.min(from + 999, last)))
    if each then for i, item in ipairs(reply) do each(from - first + i, item) end end
  end
end`;

/** The keys of `storeKeys` the commit script touches, with the type each must have. */
export const COMMIT_KEYS = ['docs', 'versions', 'index', 'inbox', 'outbox', 'order', 'seq'] as const;

/**
 * Commits a transaction, all or nothing. Redis does not roll a script back when a command in
 * it fails, so the script first checks everything that could make it fail (key types, the
 * versions read, the inbox) and only then writes; `#!lua` makes Redis refuse to start it at
 * all when out of memory, rather than fail half-way.
 *
 * KEYS: COMMIT_KEYS. ARGV: six lists, each its length then its items: the documents read
 * (key, version, '0' when missing), the writes (key, JSON, '' to delete), the consumed ids,
 * the outbox (id, envelope JSON), the cancelled ids, and the messages sent straight to the
 * bus (stream, JSON array of its envelopes), when the bus is Redis Streams on this server.
 * Returns 0 on a conflict (nothing written); when committed, the version of the documents it
 * wrote (the commit's number; 1 when it wrote nothing at all).
 */
export const commitScript = script(`#!lua
local docs, versions, index, inbox, outbox, order, seq = unpack(KEYS)
local pos = 0
local function list(width)
  pos = pos + 1
  local out = {}
  for k = 1, tonumber(ARGV[pos]) * width do out[k] = ARGV[pos + k] end
  pos = pos + #out
  return out
end
local reads, writes, consumed, outgoing, cancel, streamed = list(2), list(2), list(1), list(2), list(1), list(2)
if #reads + #writes + #consumed + #outgoing + #cancel + #streamed == 0 then return 1 end

-- Every key this commit writes must have its type, or a command would fail half-way.
local function expect(key, want)
  local t = redis.call('TYPE', key).ok
  if t ~= 'none' and t ~= want then error('WRONGTYPE ' .. key .. ' is a ' .. t .. ', not a ' .. want) end
end
expect(seq, 'string')
if #writes > 0 then expect(docs, 'hash'); expect(versions, 'hash'); expect(index, 'zset') end
if #consumed > 0 then expect(inbox, 'zset') end
if #outgoing + #cancel > 0 then expect(outbox, 'hash'); expect(order, 'zset') end
for k = 1, #streamed, 2 do expect(streamed[k], 'stream') end

${SLICED_CALL}
local fresh = true
local readKeys = {}
for k = 1, #reads, 2 do readKeys[#readKeys + 1] = reads[k] end
call('HMGET', versions, readKeys, function(i, v)
  if (v or '0') ~= reads[2 * i] then fresh = false end
end)
call('ZMSCORE', inbox, consumed, function(_, score)
  if score then fresh = false end
end)
if not fresh then return 0 end
-- Only reads to check (from a cache): they are fresh, and nothing is written.
if #writes + #consumed + #outgoing + #cancel + #streamed == 0 then return 1 end

-- Numbers first .. last are this commit's: its documents' version is the first, its outbox
-- messages take the following ones, in order.
local last = redis.call('INCRBY', seq, 1 + #outgoing / 2)
local version = last - #outgoing / 2
-- A key read with a version exists, so it is in the index already.
local existed = {}
for k = 1, #reads, 2 do existed[reads[k]] = reads[k + 1] ~= '0' end
local set, stamp, new, gone = {}, {}, {}, {}
for k = 1, #writes, 2 do
  local key, doc = writes[k], writes[k + 1]
  if doc == '' then
    gone[#gone + 1] = key
  else
    set[#set + 1] = key; set[#set + 1] = doc
    stamp[#stamp + 1] = key; stamp[#stamp + 1] = version
    if not existed[key] then new[#new + 1] = 0; new[#new + 1] = key end
  end
end
call('HSET', docs, set)
call('HSET', versions, stamp)
call('ZADD', index, new)
call('HDEL', docs, gone)
call('HDEL', versions, gone)
call('ZREM', index, gone)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local marks = {}
for _, id in ipairs(consumed) do marks[#marks + 1] = now; marks[#marks + 1] = id end
call('ZADD', inbox, marks)
for k = 1, #outgoing, 2 do
  -- An id already in the outbox keeps its first envelope and its place.
  if redis.call('HSETNX', outbox, outgoing[k], outgoing[k + 1]) == 1 then
    redis.call('ZADD', order, version + (k + 1) / 2, outgoing[k])
  end
end
call('HDEL', outbox, cancel)
call('ZREM', order, cancel)
for k = 1, #streamed, 2 do redis.call('XADD', streamed[k], '*', 'batch', streamed[k + 1]) end
return version
`);

/**
 * Reads documents with their versions and whether messages were consumed, as of one moment.
 * KEYS: docs, versions, inbox. ARGV: the number of document keys, the keys, then message ids.
 * Returns per key its JSON and its version (nil when missing), then per id its inbox time or nil.
 */
export const snapshotScript = script(`#!lua flags=no-writes
local n = tonumber(ARGV[1])
local out = {}
${SLICED_CALL}
local function keep(_, item) out[#out + 1] = item end
call('HMGET', KEYS[1], ARGV, keep, 2, n + 1)
call('HMGET', KEYS[2], ARGV, keep, 2, n + 1)
call('ZMSCORE', KEYS[3], ARGV, keep, n + 2, #ARGV)
return out
`);

/** Documents whose key starts with ARGV[2], from ZRANGE BYLEX start ARGV[1], at most ARGV[3]: flat key, JSON pairs. */
export const scanScript = script(`#!lua flags=no-writes
local prefix = ARGV[2]
local keys = redis.call('ZRANGE', KEYS[1], ARGV[1], '+', 'BYLEX', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, key in ipairs(keys) do
  -- Keys with the prefix come together in lexical order: the first one without it ends the page.
  if string.sub(key, 1, #prefix) ~= prefix then break end
  local doc = redis.call('HGET', KEYS[2], key)
  if doc then
    out[#out + 1] = key
    out[#out + 1] = doc
  end
end
return out
`);

/** The outbox envelopes, oldest first. */
export const outboxScript = script(`#!lua flags=no-writes
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[#out + 1] = redis.call('HGET', KEYS[2], id)
end
return out
`);

/** Removes inbox entries consumed more than ARGV[1] ms ago by the server's clock; returns how many. */
export const pruneScript = script(`#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[1])))
`);
