package dispatch.runtime;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * JSON (RFC 8259, strictly) as the function server reads and writes it. Objects are LinkedHashMaps
 * (key order kept, a repeated key's last value wins), arrays ArrayLists, integers Integer, Long or
 * BigInteger, the smallest that holds them, other numbers Double. What is written must already be
 * in that form (see Convert.plain): null, String, Boolean, Number, Map with String keys, List.
 */
final class Json {
    static final int MAX_DEPTH = 512;

    /** The text is not JSON; the message says where and why. */
    static final class Invalid extends Exception {
        Invalid(String message) {
            super(message);
        }
    }

    private final String text;
    private int at;

    private Json(String text) {
        this.text = text;
    }

    static Object parse(String text) throws Invalid {
        Json reader = new Json(text);
        reader.skipSpace();
        Object value = reader.value(0);
        reader.skipSpace();
        if (reader.at < text.length()) {
            throw reader.invalid("unexpected " + reader.found() + " after the JSON value");
        }
        return value;
    }

    private Object value(int depth) throws Invalid {
        if (depth > MAX_DEPTH) {
            throw invalid("nesting deeper than " + MAX_DEPTH + " levels");
        }
        if (at >= text.length()) {
            throw invalid("unexpected end of input");
        }
        char c = text.charAt(at);
        switch (c) {
            case '{': return object(depth);
            case '[': return array(depth);
            case '"': return string();
            case 't': return literal("true", Boolean.TRUE);
            case 'f': return literal("false", Boolean.FALSE);
            case 'n': return literal("null", null);
            default:
                if (c == '-' || (c >= '0' && c <= '9')) {
                    return number();
                }
                throw invalid("unexpected " + found());
        }
    }

    private Map<String, Object> object(int depth) throws Invalid {
        Map<String, Object> members = new LinkedHashMap<>();
        at++;
        skipSpace();
        if (peek() == '}') {
            at++;
            return members;
        }
        while (true) {
            skipSpace();
            if (peek() != '"') {
                throw invalid("expected a string key, found " + found());
            }
            String key = string();
            skipSpace();
            expect(':');
            skipSpace();
            members.put(key, value(depth + 1));
            skipSpace();
            if (peek() == ',') {
                at++;
            } else {
                expect('}');
                return members;
            }
        }
    }

    private List<Object> array(int depth) throws Invalid {
        List<Object> items = new ArrayList<>();
        at++;
        skipSpace();
        if (peek() == ']') {
            at++;
            return items;
        }
        while (true) {
            skipSpace();
            items.add(value(depth + 1));
            skipSpace();
            if (peek() == ',') {
                at++;
            } else {
                expect(']');
                return items;
            }
        }
    }

    private String string() throws Invalid {
        at++;
        StringBuilder out = null;
        int start = at;
        while (true) {
            if (at >= text.length()) {
                throw invalid("unterminated string");
            }
            char c = text.charAt(at);
            if (c == '"') {
                String value = out == null ? text.substring(start, at) : out.append(text, start, at).toString();
                at++;
                return value;
            }
            if (c < 0x20) {
                throw invalid("control character U+" + hex(c) + " in a string");
            }
            if (c != '\\') {
                at++;
                continue;
            }
            out = (out == null ? new StringBuilder() : out).append(text, start, at);
            out.append(escape());
            start = at;
        }
    }

    /** One escape sequence after its backslash. Surrogate pairs need no special case: the two \\u
     *  escapes of a pair become the two UTF-16 units Java keeps them as. */
    private char escape() throws Invalid {
        at++;
        if (at >= text.length()) {
            throw invalid("unterminated string");
        }
        char c = text.charAt(at++);
        switch (c) {
            case '"': return '"';
            case '\\': return '\\';
            case '/': return '/';
            case 'b': return '\b';
            case 'f': return '\f';
            case 'n': return '\n';
            case 'r': return '\r';
            case 't': return '\t';
            case 'u':
                if (at + 4 > text.length()) {
                    throw invalid("incomplete \\u escape");
                }
                int code = 0;
                for (int i = 0; i < 4; i++) {
                    int digit = Character.digit(text.charAt(at + i), 16);
                    if (digit < 0) {
                        throw invalid("invalid \\u escape");
                    }
                    code = code * 16 + digit;
                }
                at += 4;
                return (char) code;
            default:
                at--;
                throw invalid("invalid escape \\" + c);
        }
    }

    private Object number() throws Invalid {
        int start = at;
        if (peek() == '-') {
            at++;
        }
        if (peek() == '0') {
            at++;
        } else if (!digits()) {
            throw invalid("expected a digit, found " + found());
        }
        boolean integral = true;
        if (peek() == '.') {
            at++;
            integral = false;
            if (!digits()) {
                throw invalid("expected a digit after the decimal point, found " + found());
            }
        }
        if (peek() == 'e' || peek() == 'E') {
            at++;
            integral = false;
            if (peek() == '+' || peek() == '-') {
                at++;
            }
            if (!digits()) {
                throw invalid("expected a digit in the exponent, found " + found());
            }
        }
        String literal = text.substring(start, at);
        if (!integral) {
            return Double.valueOf(literal);
        }
        if (literal.length() <= 9) {
            return Integer.valueOf(literal);
        }
        BigInteger big = new BigInteger(literal);
        if (big.bitLength() < 32) {
            return Integer.valueOf(big.intValue());
        }
        return big.bitLength() < 64 ? (Object) Long.valueOf(big.longValue()) : big;
    }

    private boolean digits() {
        int start = at;
        while (at < text.length() && text.charAt(at) >= '0' && text.charAt(at) <= '9') {
            at++;
        }
        return at > start;
    }

    private Object literal(String word, Object value) throws Invalid {
        if (!text.startsWith(word, at)) {
            throw invalid("unexpected " + found());
        }
        at += word.length();
        return value;
    }

    private void expect(char wanted) throws Invalid {
        if (peek() != wanted) {
            throw invalid("expected '" + wanted + "', found " + found());
        }
        at++;
    }

    private char peek() {
        return at < text.length() ? text.charAt(at) : '\0';
    }

    private void skipSpace() {
        while (at < text.length()) {
            char c = text.charAt(at);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                return;
            }
            at++;
        }
    }

    private String found() {
        if (at >= text.length()) {
            return "end of input";
        }
        char c = text.charAt(at);
        return c < 0x20 || c > 0x7e ? "character U+" + hex(c) : "'" + c + "'";
    }

    private Invalid invalid(String problem) {
        return new Invalid(problem + " at character " + at);
    }

    private static String hex(char c) {
        String digits = Integer.toHexString(c).toUpperCase();
        return "0000".substring(digits.length()) + digits;
    }

    // ---- writing

    static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(out, value);
        return out.toString();
    }

    @SuppressWarnings("unchecked")
    static void write(StringBuilder out, Object value) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof String) {
            string(out, (String) value);
        } else if (value instanceof Boolean) {
            out.append(value.toString());
        } else if (value instanceof Number) {
            number(out, (Number) value);
        } else if (value instanceof Map) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<String, Object> member : ((Map<String, Object>) value).entrySet()) {
                out.append(first ? "" : ",");
                first = false;
                string(out, member.getKey());
                out.append(':');
                write(out, member.getValue());
            }
            out.append('}');
        } else if (value instanceof List) {
            out.append('[');
            boolean first = true;
            for (Object item : (List<Object>) value) {
                out.append(first ? "" : ",");
                first = false;
                write(out, item);
            }
            out.append(']');
        } else {
            throw new IllegalStateException("not plain JSON data: " + value.getClass().getName());
        }
    }

    static void number(StringBuilder out, Number number) {
        if (number instanceof Integer || number instanceof Long || number instanceof Short || number instanceof Byte
                || number instanceof BigInteger || number instanceof BigDecimal || number instanceof AtomicInteger
                || number instanceof AtomicLong) {
            out.append(number.toString());
            return;
        }
        double value = number.doubleValue();
        if (Double.isNaN(value) || Double.isInfinite(value)) {
            throw new IllegalArgumentException("the number " + value + " has no JSON form");
        }
        out.append(number instanceof Float ? number.toString() : Double.toString(value));
    }

    /** Non-ASCII text is written as it is, except a lone surrogate, which has no UTF-8 form: escaped. */
    static void string(StringBuilder out, String value) {
        out.append('"');
        int length = value.length();
        for (int i = 0; i < length; i++) {
            char c = value.charAt(i);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                case '\b': out.append("\\b"); break;
                case '\f': out.append("\\f"); break;
                default:
                    if (c < 0x20) {
                        out.append("\\u").append(hex(c));
                    } else if (Character.isHighSurrogate(c) && i + 1 < length
                            && Character.isLowSurrogate(value.charAt(i + 1))) {
                        out.append(c).append(value.charAt(++i));
                    } else if (Character.isSurrogate(c)) {
                        out.append("\\u").append(hex(c).toLowerCase());
                    } else {
                        out.append(c);
                    }
            }
        }
        out.append('"');
    }
}
