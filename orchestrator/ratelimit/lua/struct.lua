-- Redis bundles the `struct` library with its Lua; fakeredis (the unit tests' Redis and the
-- embedded fallback when no redis-server exists) does not. This is the part of it the scripts
-- use, little-endian doubles ("<d", "<dd", ...), in plain Lua 5.1, bit for bit the same; real
-- Redis never runs it. Prepended to every script before the prelude (ratelimit/scripts.py).
local struct = struct  -- Redis's, where it exists (the scripts read this local)
if not struct then
  local function encode(x)
    local sign = 0
    if x < 0 or (x == 0 and 1 / x < 0) then sign, x = 1, -x end
    local mant, expo = 0, 0
    if x ~= x then
      mant, expo = 2 ^ 51, 2047
    elseif x == math.huge then
      expo = 2047
    elseif x > 0 then
      local m, e = math.frexp(x)  -- x = m * 2^e, 0.5 <= m < 1
      if e > -1022 then  -- normal: 1.f * 2^(e - 1)
        mant, expo = (m * 2 - 1) * 2 ^ 52, e + 1022
      else  -- subnormal: mant * 2^-1074
        mant = math.ldexp(m, e + 1074)
      end
    end
    local bytes = {}
    for i = 1, 6 do
      bytes[i] = mant % 256
      mant = math.floor(mant / 256)
    end
    bytes[7] = (expo % 16) * 16 + mant
    bytes[8] = sign * 128 + math.floor(expo / 16)
    return string.char(unpack(bytes))
  end

  local function decode(s, at)
    local b1, b2, b3, b4, b5, b6, b7, b8 = string.byte(s, at, at + 7)
    if not b8 then error('struct.unpack: data string too short') end
    local sign = 1
    if b8 >= 128 then sign = -1 end
    local expo = (b8 % 128) * 16 + math.floor(b7 / 16)
    local mant = b7 % 16
    for _, b in ipairs({b6, b5, b4, b3, b2, b1}) do mant = mant * 256 + b end
    if expo == 2047 then
      if mant == 0 then return sign * math.huge end
      return 0 / 0
    end
    if expo == 0 then return sign * math.ldexp(mant, -1074) end
    return sign * math.ldexp(mant + 2 ^ 52, expo - 1075)
  end

  local function count(format)
    local ds = string.match(format, '^<(d+)$')
    if not ds then error('struct: only "<d..." formats are emulated, not ' .. format) end
    return #ds
  end

  struct = {
    pack = function(format, ...)
      local out = {}
      for i = 1, count(format) do out[i] = encode(select(i, ...)) end
      return table.concat(out)
    end,
    unpack = function(format, s, at)
      at = at or 1
      local out = {}
      for i = 1, count(format) do
        out[i] = decode(s, at)
        at = at + 8
      end
      out[#out + 1] = at
      return unpack(out)
    end,
  }
end
