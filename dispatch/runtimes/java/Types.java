package dispatch.runtime;

import java.lang.reflect.GenericArrayType;
import java.lang.reflect.GenericDeclaration;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.lang.reflect.WildcardType;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Generic types as far as conversion needs them: what a class's BiFunction takes, what a Map or
 * List holds, what a generic field is, with the type variables of a class hierarchy bound to what
 * its subclasses say they are (class Hello extends Base&lt;Payload&gt;: Base's T is Payload).
 */
final class Types {
    private Types() {
    }

    /** The `index`-th type argument `target` gets in `type` (Object when nothing says). */
    static Type argument(Type type, Class<?> target, int index) {
        Type found = supertype(type, target, new HashMap<TypeVariable<?>, Type>());
        if (found instanceof ParameterizedType) {
            return ((ParameterizedType) found).getActualTypeArguments()[index];
        }
        return Object.class;
    }

    /** `type` as the generic `target` it extends or implements, its type arguments bound; null if it does not. */
    private static Type supertype(Type type, Class<?> target, Map<TypeVariable<?>, Type> outer) {
        Class<?> raw = raw(type);
        if (raw == null) {
            return null;
        }
        Map<TypeVariable<?>, Type> bound = new HashMap<>();
        if (type instanceof ParameterizedType) {
            TypeVariable<?>[] names = raw.getTypeParameters();
            Type[] values = ((ParameterizedType) type).getActualTypeArguments();
            for (int i = 0; i < names.length && i < values.length; i++) {
                bound.put(names[i], substitute(values[i], outer));
            }
        }
        if (raw == target) {
            return type instanceof ParameterizedType ? substitute(type, outer) : raw;
        }
        for (Type parent : raw.getGenericInterfaces()) {
            Type found = supertype(parent, target, bound);
            if (found != null) {
                return found;
            }
        }
        Type parent = raw.getGenericSuperclass();
        return parent == null ? null : supertype(parent, target, bound);
    }

    /** The field's or component's declared type with the owner's type variables bound by `owner`. */
    static Type member(Type declared, Type owner) {
        if (!(declared instanceof TypeVariable) && !(declared instanceof ParameterizedType)
                && !(declared instanceof GenericArrayType)) {
            return declared;
        }
        Map<TypeVariable<?>, Type> bound = new HashMap<>();
        bind(declared, owner, bound);
        return substitute(declared, bound);
    }

    private static void bind(Type declared, Type owner, Map<TypeVariable<?>, Type> bound) {
        if (declared instanceof TypeVariable) {
            TypeVariable<?> variable = (TypeVariable<?>) declared;
            GenericDeclaration where = variable.getGenericDeclaration();
            if (where instanceof Class) {
                int index = Arrays.asList(((Class<?>) where).getTypeParameters()).indexOf(variable);
                bound.put(variable, argument(owner, (Class<?>) where, index));
            }
        } else if (declared instanceof ParameterizedType) {
            for (Type argument : ((ParameterizedType) declared).getActualTypeArguments()) {
                bind(argument, owner, bound);
            }
        } else if (declared instanceof GenericArrayType) {
            bind(((GenericArrayType) declared).getGenericComponentType(), owner, bound);
        }
    }

    private static Type substitute(Type type, Map<TypeVariable<?>, Type> bound) {
        if (type instanceof TypeVariable) {
            Type value = bound.get(type);
            return value != null ? value : bound(((TypeVariable<?>) type).getBounds());
        }
        if (type instanceof WildcardType) {
            return substitute(bound(((WildcardType) type).getUpperBounds()), bound);
        }
        if (type instanceof GenericArrayType) {
            Type component = substitute(((GenericArrayType) type).getGenericComponentType(), bound);
            Class<?> raw = raw(component);
            return java.lang.reflect.Array.newInstance(raw == null ? Object.class : raw, 0).getClass();
        }
        if (type instanceof ParameterizedType) {
            ParameterizedType generic = (ParameterizedType) type;
            Type[] values = generic.getActualTypeArguments().clone();
            for (int i = 0; i < values.length; i++) {
                values[i] = substitute(values[i], bound);
            }
            return new Parameterized((Class<?>) generic.getRawType(), values, generic.getOwnerType());
        }
        return type;
    }

    private static Type bound(Type[] bounds) {
        return bounds.length == 0 ? Object.class : bounds[0];
    }

    /** The class behind a type; null for a type variable or wildcard left unbound. */
    static Class<?> raw(Type type) {
        if (type instanceof Class) {
            return (Class<?>) type;
        }
        if (type instanceof ParameterizedType) {
            return (Class<?>) ((ParameterizedType) type).getRawType();
        }
        if (type instanceof GenericArrayType) {
            Class<?> component = raw(((GenericArrayType) type).getGenericComponentType());
            return java.lang.reflect.Array.newInstance(component == null ? Object.class : component, 0).getClass();
        }
        return null;
    }

    /** A generic type whose variables have been bound. */
    private static final class Parameterized implements ParameterizedType {
        private final Class<?> raw;
        private final Type[] arguments;
        private final Type owner;

        Parameterized(Class<?> raw, Type[] arguments, Type owner) {
            this.raw = raw;
            this.arguments = arguments;
            this.owner = owner;
        }

        @Override
        public Type[] getActualTypeArguments() {
            return arguments.clone();
        }

        @Override
        public Type getRawType() {
            return raw;
        }

        @Override
        public Type getOwnerType() {
            return owner;
        }

        @Override
        public String getTypeName() {
            StringBuilder name = new StringBuilder(raw.getTypeName()).append('<');
            for (int i = 0; i < arguments.length; i++) {
                name.append(i == 0 ? "" : ", ").append(arguments[i].getTypeName());
            }
            return name.append('>').toString();
        }

        @Override
        public String toString() {
            return getTypeName();
        }
    }
}
