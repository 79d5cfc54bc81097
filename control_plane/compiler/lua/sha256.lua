-- SHA-256 (FIPS 180-4) on LuaJIT's 32-bit `bit` operations, for gateway keys: a key is
-- looked up by its digest, as the workers do, so Envoy never holds a key in its config.

local bit = require("bit")
local band, bnot, bxor, ror, rshift, tobit =
  bit.band, bit.bnot, bit.bxor, bit.ror, bit.rshift, bit.tobit
local byte, format, rep = string.byte, string.format, string.rep

-- The first 32 bits of the fractional parts of the cube roots of the first 64 primes.
local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
-- The same of the square roots of the first 8 primes: the initial hash value.
local H0 = {
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
}

local w = {}

local function compress(h, block, at)
  for i = 0, 15 do
    local a, b, c, d = byte(block, at + 4 * i, at + 4 * i + 3)
    w[i] = tobit(a * 16777216 + b * 65536 + c * 256 + d)
  end
  for i = 16, 63 do
    local x, y = w[i - 15], w[i - 2]
    local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
    local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
    w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
  end
  local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
  for i = 0, 63 do
    local t1 = hh + bxor(ror(e, 6), ror(e, 11), ror(e, 25))
      + bxor(band(e, f), band(bnot(e), g)) + K[i + 1] + w[i]
    local t2 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
      + bxor(band(a, b), band(a, c), band(b, c))
    hh, g, f, e = g, f, e, tobit(d + t1)
    d, c, b, a = c, b, a, tobit(t1 + t2)
  end
  h[1], h[2], h[3], h[4] = tobit(h[1] + a), tobit(h[2] + b), tobit(h[3] + c), tobit(h[4] + d)
  h[5], h[6], h[7], h[8] = tobit(h[5] + e), tobit(h[6] + f), tobit(h[7] + g), tobit(h[8] + hh)
end

-- The message length in bits as 8 big-endian bytes (exact below 2^53 bits).
local function length_bytes(n)
  local bits, out = n * 8, {}
  for i = 8, 1, -1 do
    out[i] = string.char(bits % 256)
    bits = math.floor(bits / 256)
  end
  return table.concat(out)
end

function sha256_hex(message)
  local padded = message .. "\128" .. rep("\0", (55 - #message) % 64)
    .. length_bytes(#message)
  local h = {}
  for i = 1, 8 do
    h[i] = tobit(H0[i])
  end
  for at = 1, #padded, 64 do
    compress(h, padded, at)
  end
  return format("%08x%08x%08x%08x%08x%08x%08x%08x",
    h[1] % 4294967296, h[2] % 4294967296, h[3] % 4294967296, h[4] % 4294967296,
    h[5] % 4294967296, h[6] % 4294967296, h[7] % 4294967296, h[8] % 4294967296)
end
