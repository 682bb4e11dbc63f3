import { script } from './script.ts';

/*
 * Scripts of the Redis bus, each on one stream (KEYS[1]) and one consumer group (ARGV[1]).
 * Each runs atomically, so that no consumer of the group can act between its reads and its
 * writes (what XREADGROUP or XAUTOCLAIM of another process would otherwise slip in between).
 * Entries come back as { id, fields, delivery count }.
 */

/** Lua: the entries an XCLAIM returned, each as { id, fields, delivery count }. */
const withDeliveries = `
local function withDeliveries(stream, group, claimed)
  local out = {}
  for _, entry in ipairs(claimed) do
    local pending = redis.call('XPENDING', stream, group, entry[1], entry[1], 1)
    out[#out + 1] = {entry[1], entry[2], pending[1][4]}
  end
  return out
end
`;

/**
 * Claims again entries this consumer (ARGV[2]) still holds: ARGV[3] = '1' only resets their idle
 * time (a handler still at work, so that no other process takes them), otherwise they are
 * returned for another delivery. Entries another process has taken meanwhile are left alone.
 * ARGV[4…]: entry ids.
 */
export const claimOwnScript = script(`#!lua${withDeliveries}
local stream, group, me, touch = KEYS[1], ARGV[1], ARGV[2], ARGV[3] == '1'
local args = {'XCLAIM', stream, group, me, 0}
for k = 4, #ARGV do
  if #redis.call('XPENDING', stream, group, ARGV[k], ARGV[k], 1, me) == 1 then args[#args + 1] = ARGV[k] end
end
if #args == 5 then return {} end
if touch then
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
  return {}
end
return withDeliveries(stream, group, redis.call(unpack(args)))
`);

/**
 * Takes up to ARGV[4] entries idle for ARGV[3] ms from any consumer of the group (one whose
 * process died), scanning the pending list from cursor ARGV[5]. Returns the next cursor, the
 * entries, and ids that were pending but no longer in the stream (which trimming must never cause).
 */
export const autoclaimScript = script(`#!lua${withDeliveries}
local stream, group = KEYS[1], ARGV[1]
local reply = redis.call('XAUTOCLAIM', stream, group, ARGV[2], ARGV[3], ARGV[5], 'COUNT', ARGV[4])
return {reply[1], withDeliveries(stream, group, reply[2]), reply[3] or {}}
`);

/**
 * Takes over the entries of a partition's stream that another consumer than ARGV[2] holds and
 * that were idle for ARGV[3] ms at least (its previous owner died, hung or let it go), at most
 * ARGV[4]: the caller holds the partition's lease now. Returns the entries and how many others
 * still hold (not idle long enough yet, or beyond ARGV[4]): none, and the hand-over is done.
 */
export const takeOverScript = script(`#!lua${withDeliveries}
local stream, group, me = KEYS[1], ARGV[1], ARGV[2]
local args = {'XCLAIM', stream, group, me, ARGV[3]}
for _, p in ipairs(redis.call('XPENDING', stream, group, 'IDLE', ARGV[3], '-', '+', ARGV[4])) do
  if p[2] ~= me then args[#args + 1] = p[1] end
end
local out = {}
if #args > 5 then out = withDeliveries(stream, group, redis.call(unpack(args))) end
local others = 0
for _, holder in ipairs(redis.call('XPENDING', stream, group)[4] or {}) do
  if holder[1] ~= me then others = others + tonumber(holder[2]) end
end
return {out, others}
`);

/**
 * On close: makes every entry this consumer (ARGV[2]) holds look idle for ARGV[3] ms, so that
 * the other processes' next reclaim takes it at once instead of after the idle timeout.
 */
export const handBackScript = script(`#!lua
local stream, group, me, idle = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local start, total = '-', 0
while true do
  local pending = redis.call('XPENDING', stream, group, start, '+', 100, me)
  if #pending == 0 then return total end
  local args = {'XCLAIM', stream, group, me, 0}
  for _, p in ipairs(pending) do args[#args + 1] = p[1] end
  args[#args + 1] = 'IDLE'
  args[#args + 1] = idle
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
  total = total + #pending
  start = '(' .. pending[#pending][1]
end
`);

/**
 * Gives up on an entry: appends it to the dead-letter stream KEYS[2] with the error and
 * acknowledges it, both or neither; a second attempt (a lost reply) finds it acknowledged and
 * appends nothing. ARGV: group, entry id, envelope, error, consumer, delivery.
 */
export const deadLetterScript = script(`#!lua
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'batch', ARGV[3], 'error', ARGV[4], 'consumer', ARGV[5],
  'stream', KEYS[1], 'entry', ARGV[2], 'delivery', ARGV[6])
return 1
`);

/**
 * Redrives a dead letter: moves entry ARGV[1] of the dead-letter stream KEYS[1] (its batch) to
 * the consumer's redrive stream KEYS[2], both or neither. Returns 0 when there is no such entry.
 */
export const redriveScript = script(`#!lua
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])[1]
if entry == nil then return 0 end
local batch = ''
for k = 1, #entry[2], 2 do if entry[2][k] == 'batch' then batch = entry[2][k + 1] end end
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], '*', 'batch', batch)
return 1
`);

/**
 * Trims a stream to what some group may still need: entries from the oldest one pending in any
 * group, or not yet delivered to it (MINID keeps the entry at the bound, one more than needed).
 * A stream without groups keeps its last entry only: a group created later starts after it.
 * Also forgets consumers (processes) with nothing pending that were idle for ARGV[1] ms;
 * XREADGROUP creates a consumer again when it comes back. Returns how many entries were trimmed.
 */
export const trimScript = script(`#!lua
local stream = KEYS[1]
if redis.call('EXISTS', stream) == 0 then return 0 end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return {tonumber(ms), tonumber(seq), id}
end
local function older(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end
local function field(flat, name)
  for k = 1, #flat, 2 do if flat[k] == name then return flat[k + 1] end end
end
local bound = nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local name = field(group, 'name')
  local summary = redis.call('XPENDING', stream, name)
  local needed = parse(summary[1] > 0 and summary[2] or field(group, 'last-delivered-id'))
  if bound == nil or older(needed, bound) then bound = needed end
  for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', stream, name)) do
    if field(consumer, 'pending') == 0 and field(consumer, 'idle') > tonumber(ARGV[1]) then
      redis.call('XGROUP', 'DELCONSUMER', stream, name, field(consumer, 'name'))
    end
  end
end
if bound == nil then
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
  if last == nil then return 0 end
  bound = parse(last[1])
end
return redis.call('XTRIM', stream, 'MINID', bound[3])
`);
