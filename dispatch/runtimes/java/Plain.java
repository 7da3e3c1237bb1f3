package dispatch.runtime;

import java.lang.reflect.Array;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.lang.reflect.RecordComponent;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A function's result as plain JSON data (what Json writes). null, String, Boolean and Number stay;
 * a char becomes a string, an enum its name; Maps become objects (keys by String.valueOf), arrays,
 * Iterables and Optionals arrays or values; a record becomes an object of its components; any other
 * object of the function's own classes an object of its fields (non-static, non-transient, the
 * compiler's own such as an inner class's this$0 left out), superclass fields first. JDK classes
 * without a JSON form (dates, UUIDs, URIs…) are written as their toString().
 */
final class Plain {
    /** The result has no JSON form: the call's FunctionError. */
    static final class NotJson extends Exception {
        NotJson(String message) {
            super(message);
        }
    }

    private final Map<Object, Boolean> path = new IdentityHashMap<>();

    private Plain() {
    }

    static Object of(Object value) throws NotJson {
        return new Plain().plain(value, "$");
    }

    private Object plain(Object value, String where) throws NotJson {
        if (value == null || value instanceof String || value instanceof Boolean) {
            return value;
        }
        if (value instanceof Number) {
            boolean floating = value instanceof Double || value instanceof Float;
            double number = ((Number) value).doubleValue();
            if (floating && (Double.isNaN(number) || Double.isInfinite(number))) {
                throw new NotJson(where + " is " + value + ", which has no JSON form");
            }
            return value;
        }
        if (value instanceof Character || value instanceof Enum) {
            return value instanceof Enum ? ((Enum<?>) value).name() : value.toString();
        }
        if (value instanceof Optional) {
            return plain(((Optional<?>) value).orElse(null), where);
        }
        if (path.size() >= Json.MAX_DEPTH) {
            throw new NotJson(where + " is nested deeper than " + Json.MAX_DEPTH + " levels");
        }
        if (path.put(value, Boolean.TRUE) != null) {
            throw new NotJson(where + " refers back to an object that contains it");
        }
        try {
            return container(value, where);
        } finally {
            path.remove(value);
        }
    }

    private Object container(Object value, String where) throws NotJson {
        if (value instanceof Map) {
            Map<String, Object> members = new LinkedHashMap<>();
            for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
                String key = String.valueOf(entry.getKey());
                members.put(key, plain(entry.getValue(), where + "." + key));
            }
            return members;
        }
        if (value instanceof Iterable || value.getClass().isArray()) {
            List<Object> items = new ArrayList<>();
            if (value instanceof Iterable) {
                for (Object item : (Iterable<?>) value) {
                    items.add(plain(item, where + "[" + items.size() + "]"));
                }
            } else {
                for (int i = 0; i < Array.getLength(value); i++) {
                    items.add(plain(Array.get(value, i), where + "[" + i + "]"));
                }
            }
            return items;
        }
        if (value.getClass().getModule().isNamed()) {
            return value.toString(); // a JDK class: its fields are not ours to read
        }
        return value.getClass().isRecord() ? record(value, where) : fields(value, where);
    }

    private Map<String, Object> record(Object value, String where) throws NotJson {
        Map<String, Object> members = new LinkedHashMap<>();
        for (RecordComponent component : value.getClass().getRecordComponents()) {
            try {
                component.getAccessor().setAccessible(true);
                Object item = component.getAccessor().invoke(value);
                members.put(component.getName(), plain(item, where + "." + component.getName()));
            } catch (ReflectiveOperationException | RuntimeException refused) {
                throw new NotJson(where + "." + component.getName() + " cannot be read: " + refused);
            }
        }
        return members;
    }

    private Map<String, Object> fields(Object value, String where) throws NotJson {
        Map<String, Object> members = new LinkedHashMap<>();
        for (Field field : fields(value.getClass())) {
            Object item;
            try {
                field.setAccessible(true);
                item = field.get(value);
            } catch (ReflectiveOperationException | RuntimeException refused) {
                throw new NotJson(where + "." + field.getName() + " cannot be read: " + refused);
            }
            members.put(field.getName(), plain(item, where + "." + field.getName()));
        }
        return members;
    }

    /** The instance fields that carry an object's data, superclass fields first. */
    static List<Field> fields(Class<?> type) {
        List<Class<?>> lineage = new ArrayList<>();
        for (Class<?> at = type; at != null && at != Object.class; at = at.getSuperclass()) {
            lineage.add(0, at);
        }
        List<Field> found = new ArrayList<>();
        for (Class<?> at : lineage) {
            for (Field field : at.getDeclaredFields()) {
                int modifiers = field.getModifiers();
                if (!Modifier.isStatic(modifiers) && !Modifier.isTransient(modifiers) && !field.isSynthetic()) {
                    found.add(field);
                }
            }
        }
        return found;
    }
}
