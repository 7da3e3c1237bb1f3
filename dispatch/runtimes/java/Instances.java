package dispatch.runtime;

import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Modifier;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import sun.reflect.ReflectionFactory;

/**
 * New instances of a payload's classes. A class with a no-argument constructor gets it, so its
 * field initialisers run. Any other, a non-static inner class among them (its constructor wants an
 * instance of the enclosing class, which a payload cannot give), gets the constructor Java's own
 * deserialisation uses: it runs Object's alone. The JDK-internal ReflectionFactory provides it; it is
 * exported by the jdk.unsupported module for code such as this.
 */
final class Instances {
    private static final Map<Class<?>, Constructor<?>> MAKERS = new ConcurrentHashMap<>();

    private Instances() {
    }

    static Object create(Class<?> type, String path) throws Convert.Mismatch {
        if (type.isInterface() || Modifier.isAbstract(type.getModifiers())) {
            throw new Convert.Mismatch(path + ": cannot create an instance of the abstract " + type.getName());
        }
        try {
            Constructor<?> maker = MAKERS.get(type);
            if (maker == null) {
                maker = maker(type);
                MAKERS.put(type, maker);
            }
            return maker.newInstance();
        } catch (InvocationTargetException failed) {
            throw new Convert.Mismatch(path + ": the constructor of " + type.getName() + " failed: "
                    + failed.getCause());
        } catch (ReflectiveOperationException | RuntimeException refused) {
            throw new Convert.Mismatch(path + ": cannot create an instance of " + type.getName() + ": " + refused);
        }
    }

    private static Constructor<?> maker(Class<?> type) throws NoSuchMethodException {
        try {
            Constructor<?> own = type.getDeclaredConstructor();
            own.setAccessible(true);
            return own;
        } catch (NoSuchMethodException none) {
            Constructor<?> object = Object.class.getDeclaredConstructor();
            return ReflectionFactory.getReflectionFactory().newConstructorForSerialization(type, object);
        }
    }
}
