-- Checks of number arguments (ARGV arrives as strings, from any caller), for the scripts
-- that check every argument before their first write; scripts.py prepends this file to
-- them (scripts._USES_ARGS).

-- The whole number value holds, when it is one in [low, high]; else nil.
local function whole(value, low, high)
  local n = tonumber(value)
  if n and n == math.floor(n) and n >= low and n <= high then
    return n
  end
  return nil
end

-- True when value holds a finite number (not NaN, not an infinity).
local function finite(value)
  local n = tonumber(value)
  return n and n == n and n > -math.huge and n < math.huge
end
