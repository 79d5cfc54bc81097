-- JSON read with every string and number kept as its source text. A translation moves values
-- from one schema to the other without decoding or re-encoding them, so a provider receives
-- each value as the client wrote it.
--
-- A string is a Lua string: what stands between its quotes, escapes as written. A number is
-- {number = "<its text>", integer = <no fraction or exponent>}; true and false are themselves,
-- null is JSON_NULL; an object is {object = {key = value}}, an array {array = {...}}, each
-- with `first` and `last`, where its text starts and ends. Reading fails (nil) on anything
-- that is not JSON, and on an object key spelled with an escape (a key compared as written
-- could differ from the key a decoder reads): the caller then leaves the body to a worker.

local JSON_NULL = {}

local byte = string.byte

-- Byte loops rather than patterns throughout: LuaJIT compiles them, and a character class
-- costs ~10 times more per byte.
local function skip_space(text, at)
  local code = byte(text, at)
  while code == 32 or code == 10 or code == 13 or code == 9 do
    at = at + 1
    code = byte(text, at)
  end
  return code ~= nil and at or nil
end

-- Whether the quote at `at` is escaped: an odd number of backslashes precedes it.
local function is_escaped(text, at)
  local before = at - 1
  while byte(text, before) == 92 do
    before = before - 1
  end
  return (at - 1 - before) % 2 == 1
end

-- The first quote from `quote` on that is not escaped.
local function escaped_string_end(text, quote)
  while quote ~= nil and is_escaped(text, quote) do  -- back to the opening quote at most
    quote = text:find('"', quote + 1, true)
  end
  return quote
end

-- Where the string that opens at `at` closes: the first quote after it that an even number of
-- backslashes precedes. A plain search for quotes is many times faster than stopping at each
-- escape, and code pasted into a prompt is full of escapes. The loop for escaped quotes is
-- apart: most strings end at their first quote, and a loop here, inside every reader's own,
-- kept LuaJIT from compiling theirs.
local function string_end(text, at)
  local quote = text:find('"', at + 1, true)
  if quote ~= nil and byte(text, quote - 1) == 92 then
    return escaped_string_end(text, quote)
  end
  return quote
end

local ESCAPE_LETTERS = {[34] = true, [92] = true, [47] = true, [98] = true, [102] = true,
                        [110] = true, [114] = true, [116] = true}

local function is_hex(code)
  return code ~= nil and (code >= 48 and code <= 57 or code >= 65 and code <= 70
                          or code >= 97 and code <= 102)
end

-- Just past the UTF-8 sequence that starts at `at` (lead byte `lead`), as JSON requires it:
-- no overlong form, no surrogate; nil if it is not one.
local function utf8_end(text, at, lead)
  local size, low, high = 0, 128, 191
  if lead >= 194 and lead <= 223 then
    size = 2
  elseif lead >= 224 and lead <= 239 then
    size = 3
    low = lead == 224 and 160 or 128
    high = lead == 237 and 159 or 191
  elseif lead >= 240 and lead <= 244 then
    size = 4
    low = lead == 240 and 144 or 128
    high = lead == 244 and 143 or 191
  else
    return nil
  end
  local second = byte(text, at + 1)
  if second == nil or second < low or second > high then
    return nil
  end
  for i = at + 2, at + size - 1 do
    local code = byte(text, i)
    if code == nil or code < 128 or code > 191 then
      return nil
    end
  end
  return at + size
end

-- Whether the \u escape whose backslash is at `at` has four hex digits within `last`, and
-- which surrogate half it writes: 0 none, 1 the first of a pair (\uD800-\uDBFF), 2 the
-- second (\uDC00-\uDFFF).
local function unicode_escape(text, at, last)
  if at + 5 > last then
    return false
  end
  for i = at + 2, at + 5 do
    if not is_hex(byte(text, i)) then
      return false
    end
  end
  local first, second = byte(text, at + 2), byte(text, at + 3)
  if first ~= 100 and first ~= 68 or second < 56 then
    return true, 0  -- not D (d) followed by 8-9, A-F (a-f)
  end
  return true, (second <= 57 or second == 97 or second == 98 or second == 65 or second == 66)
    and 1 or 2
end

-- Whether text[first..last] holds a JSON string's contents (no control character, only
-- JSON's escapes, UTF-8, a \u surrogate only as half of a pair: what JSON parsers accept),
-- and whether it has an escape.
local function string_contents(text, first, last)
  local at, escaped = first, false
  while at <= last do
    local code = byte(text, at)
    if code < 32 then
      return false
    elseif code == 92 then
      local letter = byte(text, at + 1)
      escaped = true
      if letter == 117 then
        local valid, half = unicode_escape(text, at, last)
        if not valid or half == 2 then
          return false
        elseif half == 1 then  -- its second half must follow
          local paired, second = unicode_escape(text, at + 6, last)
          if byte(text, at + 6) ~= 92 or byte(text, at + 7) ~= 117 or not paired
              or second ~= 2 then
            return false
          end
          at = at + 6
        end
        at = at + 6
      elseif ESCAPE_LETTERS[letter] and at + 1 <= last then
        at = at + 2
      else
        return false
      end
    elseif code >= 128 then
      at = utf8_end(text, at, code)
      if at == nil or at > last + 1 then
        return false
      end
    else
      at = at + 1
    end
  end
  return true, escaped
end

-- Any text, with the bytes that are not UTF-8 replaced by U+FFFD.
local function as_utf8(text)
  local at = text:find("[\128-\255]")
  while at ~= nil do
    local after = utf8_end(text, at, byte(text, at))
    if after == nil then
      return (text:gsub("[\128-\255]", "\239\191\189"))
    end
    at = text:find("[\128-\255]", after)
  end
  return text
end

local function digits_end(text, at)
  local code = byte(text, at)
  while code ~= nil and code >= 48 and code <= 57 do
    at = at + 1
    code = byte(text, at)
  end
  return at
end

-- Just past the number at `at`, and whether it is an integer; nil if none starts there.
local function number_end(text, at)
  if byte(text, at) == 45 then
    at = at + 1
  end
  local after = digits_end(text, at)
  if after == at or byte(text, at) == 48 and after > at + 1 then
    return nil  -- no digit, or a leading zero
  end
  local integer = true
  if byte(text, after) == 46 then
    local fraction = digits_end(text, after + 1)
    if fraction == after + 1 then
      return nil
    end
    after, integer = fraction, false
  end
  local code = byte(text, after)
  if code == 101 or code == 69 then
    local from = after + 1
    code = byte(text, from)
    if code == 43 or code == 45 then
      from = from + 1
    end
    local exponent = digits_end(text, from)
    if exponent == from then
      return nil
    end
    after, integer = exponent, false
  end
  return after, integer
end

-- Just past the string, true, false, null or number at `at`, checked as a parser checks it
-- (a string only found when the text was `checked` before), and whether it is an integer;
-- nil if it is none of them.
local function scalar_end(text, at, code, checked)
  if code == 34 then
    local close = string_end(text, at)
    if checked then
      return close and close + 1
    end
    return close and string_contents(text, at + 1, close - 1) and close + 1 or nil
  elseif code == 116 then
    return text:sub(at, at + 3) == "true" and at + 4 or nil
  elseif code == 102 then
    return text:sub(at, at + 4) == "false" and at + 5 or nil
  elseif code == 110 then
    return text:sub(at, at + 3) == "null" and at + 4 or nil
  end
  local after, integer = number_end(text, at)
  if after ~= nil and (not integer or after - at > 300)
      and math.abs(tonumber(text:sub(at, after - 1))) == math.huge then
    return nil  -- beyond a double, which a parser refuses
  end
  return after, integer
end

-- Where the value of the object member whose key opens at `at` starts (past the key, checked,
-- the colon and any space), where the key's string closes, and whether the key has an
-- escape; nil if there is no such member.
local function member_value(text, at)
  if byte(text, at) ~= 34 then
    return nil
  end
  local close = string_end(text, at)
  if close == nil then
    return nil
  end
  local valid, escaped = string_contents(text, at + 1, close - 1)
  if not valid then
    return nil
  end
  at = skip_space(text, close + 1)
  if at == nil or byte(text, at) ~= 58 then
    return nil
  end
  return skip_space(text, at + 1), close, escaped
end

local read_value

-- The members of the object or the items of the array whose opening bracket is at `open`.
local function read_container(text, open, is_object, checked)
  local items, closing = {}, is_object and 125 or 93
  local at = skip_space(text, open + 1)
  if at ~= nil and text:byte(at) == closing then
    return {[is_object and "object" or "array"] = items, first = open, last = at}, at + 1
  end
  while at ~= nil do
    local key
    if is_object then
      local value_at, close, escaped = member_value(text, at)
      if value_at == nil or escaped then
        return nil
      end
      key, at = text:sub(at + 1, close - 1), value_at
    end
    local value
    value, at = read_value(text, at, checked)
    if value == nil then
      return nil
    end
    if is_object then
      items[key] = value  -- the last of a repeated key wins, as with the workers' parser
    else
      items[#items + 1] = value
    end
    at = skip_space(text, at)
    if at == nil then
      return nil
    end
    local code = byte(text, at)
    if code == closing then
      return {[is_object and "object" or "array"] = items, first = open, last = at}, at + 1
    end
    if code ~= 44 then
      return nil
    end
    at = skip_space(text, at + 1)
  end
  return nil
end

read_value = function(text, at, checked)
  at = skip_space(text, at)
  if at == nil then
    return nil
  end
  local code = byte(text, at)
  if code == 123 or code == 91 then
    return read_container(text, at, code == 123, checked)
  end
  local after, integer = scalar_end(text, at, code, checked)
  if after == nil then
    return nil
  elseif code == 34 then
    return text:sub(at + 1, after - 2), after
  elseif code == 116 then
    return true, after
  elseif code == 102 then
    return false, after
  elseif code == 110 then
    return JSON_NULL, after
  end
  return {number = text:sub(at, after - 1), integer = integer}, after
end

-- Just past the value that starts at `at`, found without reading it (nil: it does not end).
-- A byte loop: string.find with a character class would stop LuaJIT's compiler.
local function value_end(text, at)
  local code = byte(text, at)
  if code == 34 then
    local close = string_end(text, at)
    return close and close + 1
  end
  if code ~= 123 and code ~= 91 then  -- a number, true, false or null
    while code ~= nil and code ~= 44 and code ~= 125 and code ~= 93 and code ~= 32
        and code ~= 10 and code ~= 13 and code ~= 9 do
      at = at + 1
      code = byte(text, at)
    end
    return code and at
  end
  local depth = 0
  while code ~= nil do
    if code == 34 then
      local close = string_end(text, at)
      if close == nil then
        return nil
      end
      at = close
    elseif code == 123 or code == 91 then
      depth = depth + 1
    elseif code == 125 or code == 93 then
      depth = depth - 1
      if depth == 0 then
        return at + 1
      end
    end
    at = at + 1
    code = byte(text, at)
  end
  return nil
end

local CLOSERS = {}  -- valid_end's open containers, reused: a check never yields

-- Just past the JSON value that starts at `at`, checked as a parser checks it (nil: not
-- JSON, or containers nested deeper than `max_depth`), with nothing read into tables: a whole
-- request is checked while only a few of its top-level values are kept. A loop keeping its
-- own stack of open containers, so that no depth of nesting can overflow Lua's stack.
local function valid_end(text, at, max_depth)
  local depth = 0
  at = skip_space(text, at)
  while at ~= nil do
    local code = byte(text, at)
    local ended = true  -- a whole value ends at `at`
    if code == 123 or code == 91 then
      if depth == max_depth then
        return nil
      end
      local closing = code + 2  -- } or ]
      at = skip_space(text, at + 1)
      if at ~= nil and byte(text, at) == closing then
        at = at + 1
      elseif at ~= nil then
        depth = depth + 1
        CLOSERS[depth] = closing
        if closing == 125 then
          at = member_value(text, at)
        end
        ended = false
      end
    else
      at = scalar_end(text, at, code)
    end
    while ended and at ~= nil do  -- close what ends here, up to the next value
      if depth == 0 then
        return at
      end
      at = skip_space(text, at)
      code = at and byte(text, at)
      if code == CLOSERS[depth] then
        depth, at = depth - 1, at + 1
      elseif code == 44 then
        at = skip_space(text, at + 1)
        if at ~= nil and CLOSERS[depth] == 125 then
          at = member_value(text, at)
        end
        ended = false
      else
        return nil
      end
    end
  end
  return nil
end

local SIMPLE_ESCAPES = {[34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f",
                        [110] = "\n", [114] = "\r", [116] = "\t"}

local function utf8_of(point)
  if point < 128 then
    return string.char(point)
  elseif point < 2048 then
    return string.char(192 + math.floor(point / 64), 128 + point % 64)
  elseif point < 65536 then
    return string.char(224 + math.floor(point / 4096), 128 + math.floor(point / 64) % 64,
                       128 + point % 64)
  end
  return string.char(240 + math.floor(point / 262144), 128 + math.floor(point / 4096) % 64,
                     128 + math.floor(point / 64) % 64, 128 + point % 64)
end

-- The text a string's contents (as read above: valid) stand for; nil for a \u escape of half
-- a surrogate pair, which is no text.
local function json_unescaped(inner)
  if not inner:find("\\", 1, true) then
    return inner
  end
  local parts, from = {}, 1
  while true do
    local slash = inner:find("\\", from, true)
    if slash == nil then
      parts[#parts + 1] = inner:sub(from)
      return table.concat(parts)
    end
    parts[#parts + 1] = inner:sub(from, slash - 1)
    local letter = byte(inner, slash + 1)
    if letter ~= 117 then
      parts[#parts + 1] = SIMPLE_ESCAPES[letter]
      from = slash + 2
    else
      local point = tonumber(inner:sub(slash + 2, slash + 5), 16)
      from = slash + 6
      if point >= 0xD800 and point <= 0xDBFF and inner:sub(from, from + 1) == "\\u" then
        local low = tonumber(inner:sub(from + 2, from + 5), 16)
        if low < 0xDC00 or low > 0xDFFF then
          return nil
        end
        point = 0x10000 + (point - 0xD800) * 1024 + (low - 0xDC00)
        from = from + 6
      elseif point >= 0xD800 and point <= 0xDFFF then
        return nil
      end
      parts[#parts + 1] = utf8_of(point)
    end
  end
end

-- The keys members_at looks for: each by name, and by its first byte and length, which
-- tell most other keys apart without copying them out of the text.
local function key_set(names)
  local keys = {}
  for _, name in ipairs(names) do
    keys[name], keys[byte(name) * 256 + #name] = true, true
  end
  return keys
end

-- Where the values of the object that opens at `open` start, by key, for the keys in
-- `wanted` (a key_set; keys compared decoded, the last of a repeated key wins, as when read),
-- in a text valid_end has checked: a few members found without reading the rest into tables.
local function members_at(text, open, wanted)
  local found = {}
  local at = skip_space(text, open + 1)
  while byte(text, at) == 34 do
    local value_at, close, escaped = member_value(text, at)
    local key
    if escaped then
      key = json_unescaped(text:sub(at + 1, close - 1))
    elseif wanted[byte(text, at + 1) * 256 + close - at - 1] then
      key = text:sub(at + 1, close - 1)
    end
    if key ~= nil and wanted[key] then
      found[key] = value_at
    end
    at = skip_space(text, value_end(text, value_at))
    if byte(text, at) == 44 then
      at = skip_space(text, at + 1)
    end
  end
  return found
end

-- The document `text` as above, or nil. A `checked` text is one valid_end has found whole
-- and valid (a request's body, which the lane's reader checks first): its string values are
-- then only found, not checked again. Keys are (they are short, and one with an escape must
-- be told): a byte loop of their own cost more than it saved, in Envoy's LuaJIT.
local function json_read(text, checked)
  local value, after = read_value(text, 1, checked)
  if value == nil or skip_space(text, after) ~= nil then
    return nil
  end
  return value
end

-- The text of a container without the spaces between its tokens.
local function minified(text)
  local parts, from = {}, 1
  while true do
    local mark = text:find('[ \t\r\n"]', from)
    if mark == nil then
      parts[#parts + 1] = text:sub(from)
      return table.concat(parts)
    end
    parts[#parts + 1] = text:sub(from, mark - 1)
    if text:byte(mark) == 34 then
      local close = string_end(text, mark)
      parts[#parts + 1] = text:sub(mark, close)
      from = close + 1
    else
      from = skip_space(text, mark) or #text + 1
    end
  end
end

-- A value read from `text`, written back as compact JSON.
local function json_source(text, value)
  if type(value) == "string" then
    return '"' .. value .. '"'
  elseif value == true or value == false then
    return tostring(value)
  elseif value == JSON_NULL then
    return "null"
  elseif value.number ~= nil then
    return value.number
  end
  return minified(text:sub(value.first, value.last))
end

local ESCAPED = {['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
                 ["\b"] = "\\b", ["\f"] = "\\f"}

-- Any text as a JSON string; bytes that are not UTF-8 become U+FFFD.
local function json_quoted(text)
  local escaped = as_utf8(text):gsub('[%z\1-\31"\\]', function(char)
    return ESCAPED[char] or string.format("\\u%04x", char:byte())
  end)
  return '"' .. escaped .. '"'
end
