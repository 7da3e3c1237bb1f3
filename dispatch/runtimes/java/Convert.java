package dispatch.runtime;

import java.lang.reflect.Array;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;

/**
 * From parsed JSON to the type a handler's apply() takes. Object, Map, List, String, Number and
 * Boolean take the JSON as parsed; numbers, enums (by name), arrays and collections are converted
 * to what is declared; any other class is made without running a constructor (none is needed, and
 * an inner class's would want an enclosing instance) unless it has a no-argument one, and its
 * declared fields are set by name, converted the same way; JSON members without a field are
 * ignored. Records get their canonical constructor, JDK value classes (dates, UUIDs…) are read from
 * their text. The way back is Plain.
 */
final class Convert {
    /** The JSON does not fit the declared type: the call's InputError. */
    static final class Mismatch extends Exception {
        Mismatch(String message) {
            super(message);
        }
    }

    private Convert() {
    }

    /** `json` as the declared `type`; `path` says where it is in the payload ($.items[0].name). */
    static Object to(Object json, Type type, String path) throws Mismatch {
        Class<?> raw = Types.raw(type);
        if (raw == null || raw == Object.class) {
            return json;
        }
        if (json == null) {
            if (raw.isPrimitive()) {
                throw mismatch(path, "a " + raw.getName(), null);
            }
            return null;
        }
        Class<?> boxed = boxed(raw);
        if (Number.class.isAssignableFrom(boxed)) {
            if (!(json instanceof Number)) {
                throw mismatch(path, "a number", json);
            }
            return number((Number) json, boxed, path);
        }
        if (Map.class.isAssignableFrom(raw)) {
            return map(json, raw, type, path);
        }
        if (Collection.class.isAssignableFrom(raw) || raw == Iterable.class) {
            return collection(json, raw, type, path);
        }
        if (boxed.isInstance(json)) {
            return json; // a String, a Boolean, or an interface the parsed value implements
        }
        return made(json, raw, type, path);
    }

    /** What the parsed JSON is not already: a char, an enum, an array, an object of a class. */
    private static Object made(Object json, Class<?> raw, Type type, String path) throws Mismatch {
        Class<?> boxed = boxed(raw);
        if (boxed == Character.class) {
            if (!(json instanceof String) || ((String) json).length() != 1) {
                throw mismatch(path, "a string of one character", json);
            }
            return ((String) json).charAt(0);
        }
        if (raw.isEnum()) {
            return constant(raw, json, path);
        }
        if (raw.isArray()) {
            List<?> items = list(json, path);
            Object array = Array.newInstance(raw.getComponentType(), items.size());
            for (int i = 0; i < items.size(); i++) {
                Array.set(array, i, to(items.get(i), raw.getComponentType(), path + "[" + i + "]"));
            }
            return array;
        }
        if (boxed == String.class || boxed == Boolean.class || boxed.isInterface()) {
            throw mismatch(path, boxed == String.class ? "a string" : boxed == Boolean.class ? "a boolean"
                    : "a value implementing " + boxed.getName(), json);
        }
        if (raw.getModule().isNamed()) {
            return fromText(raw, json, path); // a JDK class: its fields are not ours to set
        }
        return raw.isRecord() ? record(json, raw, type, path) : object(json, raw, type, path);
    }

    /** A JDK value class (LocalDate, UUID, URI…) from its text, as Plain writes it: by its static
     *  parse(CharSequence), valueOf(String) or fromString(String), else its (String) constructor. */
    private static Object fromText(Class<?> type, Object json, String path) throws Mismatch {
        if (!(json instanceof String)) {
            throw mismatch(path, "the text of a " + type.getName(), json);
        }
        String[][] factories = {{"parse", "java.lang.CharSequence"}, {"valueOf", "java.lang.String"},
                                {"fromString", "java.lang.String"}};
        try {
            for (String[] factory : factories) {
                try {
                    Method made = type.getMethod(factory[0], Class.forName(factory[1]));
                    if (Modifier.isStatic(made.getModifiers()) && type.isAssignableFrom(made.getReturnType())) {
                        return made.invoke(null, json);
                    }
                } catch (NoSuchMethodException absent) {
                    // the next way, if any
                }
            }
            return type.getConstructor(String.class).newInstance(json);
        } catch (InvocationTargetException refused) {
            throw new Mismatch(path + ": not a valid " + type.getName() + ": " + refused.getCause().getMessage());
        } catch (ReflectiveOperationException | RuntimeException unsupported) {
            throw new Mismatch(path + ": " + type.getName() + " cannot be made from JSON");
        }
    }

    private static Object number(Number json, Class<?> boxed, String path) throws Mismatch {
        if (boxed == Double.class) {
            return json.doubleValue();
        }
        if (boxed == Float.class) {
            return json.floatValue();
        }
        if (boxed == BigDecimal.class) {
            return new BigDecimal(json.toString());
        }
        if (boxed == Number.class) {
            return json;
        }
        BigInteger integer;
        try {
            integer = json instanceof Double ? new BigDecimal(json.toString()).toBigIntegerExact()
                    : new BigInteger(json.toString());
        } catch (ArithmeticException notWhole) {
            throw mismatch(path, "a whole number", json);
        }
        int bits = boxed == Long.class ? 64 : boxed == Integer.class ? 32 : boxed == Short.class ? 16
                : boxed == Byte.class ? 8 : Integer.MAX_VALUE;
        if (bits == Integer.MAX_VALUE && boxed != BigInteger.class) {
            throw new Mismatch(path + ": numbers of type " + boxed.getName() + " are not supported");
        }
        if (integer.bitLength() >= bits) {
            throw mismatch(path, "a number within " + boxed.getSimpleName() + " range", json);
        }
        if (boxed == Long.class || boxed == Integer.class) {
            return boxed == Long.class ? (Object) integer.longValue() : (Object) integer.intValue();
        }
        return boxed == Short.class ? (Object) integer.shortValue() : boxed == Byte.class ? (Object) integer.byteValue()
                : integer;
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static Object constant(Class<?> type, Object json, String path) throws Mismatch {
        if (!(json instanceof String)) {
            throw mismatch(path, "the name of a " + type.getSimpleName(), json);
        }
        try {
            return Enum.valueOf((Class) type, (String) json);
        } catch (IllegalArgumentException unknown) {
            throw new Mismatch(path + ": " + type.getSimpleName() + " has no constant " + json);
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<Object, Object> map(Object json, Class<?> raw, Type type, String path) throws Mismatch {
        if (!(json instanceof Map)) {
            throw mismatch(path, "a JSON object", json);
        }
        Class<?> keys = Types.raw(Types.argument(type, Map.class, 0));
        if (keys != null && keys != Object.class && keys != String.class && keys != CharSequence.class) {
            throw new Mismatch(path + ": a JSON object's keys are strings, not " + keys.getName());
        }
        Type values = Types.argument(type, Map.class, 1);
        if (values == Object.class && raw.isInstance(json)) {
            return (Map<Object, Object>) json; // as parsed: nothing in it to convert
        }
        Map<Object, Object> result = (Map<Object, Object>) container(raw, LinkedHashMap.class, path);
        for (Map.Entry<String, Object> member : ((Map<String, Object>) json).entrySet()) {
            result.put(member.getKey(), to(member.getValue(), values, path + "." + member.getKey()));
        }
        return result;
    }

    @SuppressWarnings("unchecked")
    private static Collection<Object> collection(Object json, Class<?> raw, Type type, String path) throws Mismatch {
        List<?> items = list(json, path);
        Type element = Types.argument(type, Iterable.class, 0);
        if (element == Object.class && raw.isInstance(items)) {
            return (Collection<Object>) items; // as parsed: nothing in it to convert
        }
        Class<?> fallback = raw.isAssignableFrom(ArrayList.class) ? ArrayList.class : LinkedHashSet.class;
        Collection<Object> result = (Collection<Object>) container(raw, fallback, path);
        for (int i = 0; i < items.size(); i++) {
            result.add(to(items.get(i), element, path + "[" + i + "]"));
        }
        return result;
    }

    private static List<?> list(Object json, String path) throws Mismatch {
        if (!(json instanceof List)) {
            throw mismatch(path, "a JSON array", json);
        }
        return (List<?>) json;
    }

    /** An empty Map or Collection of the declared class: `fallback` for an interface it implements. */
    private static Object container(Class<?> raw, Class<?> fallback, String path) throws Mismatch {
        Class<?> made = raw.isAssignableFrom(fallback) ? fallback : raw;
        try {
            return made.getConstructor().newInstance();
        } catch (ReflectiveOperationException | RuntimeException cannot) {
            throw new Mismatch(path + ": cannot create an empty " + raw.getName());
        }
    }

    @SuppressWarnings("unchecked")
    private static Object object(Object json, Class<?> raw, Type type, String path) throws Mismatch {
        if (!(json instanceof Map)) {
            throw mismatch(path, "a JSON object for " + raw.getSimpleName(), json);
        }
        Map<String, Object> members = (Map<String, Object>) json;
        Object instance = Instances.create(raw, path);
        for (Field field : Plain.fields(raw)) {
            if (!members.containsKey(field.getName())) {
                continue;
            }
            Object value = members.get(field.getName());
            if (value == null && field.getType().isPrimitive()) {
                continue; // as if absent: the field keeps its default
            }
            Object converted = to(value, Types.member(field.getGenericType(), type), path + "." + field.getName());
            try {
                field.setAccessible(true);
                field.set(instance, converted);
            } catch (ReflectiveOperationException | RuntimeException refused) {
                throw new Mismatch(path + "." + field.getName() + ": cannot be set (" + refused + ")");
            }
        }
        return instance;
    }

    @SuppressWarnings("unchecked")
    private static Object record(Object json, Class<?> raw, Type type, String path) throws Mismatch {
        if (!(json instanceof Map)) {
            throw mismatch(path, "a JSON object for " + raw.getSimpleName(), json);
        }
        Map<String, Object> members = (Map<String, Object>) json;
        RecordComponent[] components = raw.getRecordComponents();
        Class<?>[] types = new Class<?>[components.length];
        Object[] values = new Object[components.length];
        for (int i = 0; i < components.length; i++) {
            RecordComponent component = components[i];
            types[i] = component.getType();
            Object value = members.get(component.getName());
            values[i] = value == null && types[i].isPrimitive() ? Array.get(Array.newInstance(types[i], 1), 0)
                    : to(value, Types.member(component.getGenericType(), type), path + "." + component.getName());
        }
        try {
            Constructor<?> canonical = raw.getDeclaredConstructor(types);
            canonical.setAccessible(true);
            return canonical.newInstance(values);
        } catch (ReflectiveOperationException | RuntimeException failed) {
            Throwable why = failed.getCause() != null ? failed.getCause() : failed;
            throw new Mismatch(path + ": cannot create " + raw.getSimpleName() + " (" + why + ")");
        }
    }

    private static Class<?> boxed(Class<?> type) {
        if (!type.isPrimitive()) {
            return type;
        }
        return type == int.class ? Integer.class : type == long.class ? Long.class : type == double.class ? Double.class
                : type == boolean.class ? Boolean.class : type == float.class ? Float.class
                : type == short.class ? Short.class : type == byte.class ? Byte.class : Character.class;
    }

    private static Mismatch mismatch(String path, String expected, Object found) {
        return new Mismatch(path + ": expected " + expected + ", got " + describe(found));
    }

    private static String describe(Object json) {
        if (json == null) {
            return "null";
        }
        if (json instanceof Map) {
            return "a JSON object";
        }
        if (json instanceof List) {
            return "a JSON array";
        }
        String text = Json.write(json);
        return (json instanceof String ? "the string " : json instanceof Boolean ? "" : "the number ")
                + (text.length() > 40 ? text.substring(0, 40) + "…" : text);
    }
}
