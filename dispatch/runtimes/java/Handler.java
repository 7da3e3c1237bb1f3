package dispatch.runtime;

import java.io.File;
import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Modifier;
import java.lang.reflect.Type;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;

/**
 * The function: its class (a BiFunction&lt;Map&lt;String, Object&gt;, T, R&gt;, by its fully
 * qualified name) loaded from the function's compiled classes and the image's jars, one instance
 * made with its public no-argument constructor, and the types its apply() takes.
 */
final class Handler {
    final Class<?> type;
    final ClassLoader loader;
    private final BiFunction<Object, Object, Object> instance;
    private final Type contextType;
    private final Type payloadType;

    /** What makes the function unusable: `Invalid function file or handler: …` (§7.3). */
    static final class Invalid extends Exception {
        final List<String> stacktrace;

        Invalid(String detail) {
            this(detail, new ArrayList<String>());
        }

        Invalid(String detail, List<String> stacktrace) {
            super("Invalid function file or handler: " + detail);
            this.stacktrace = stacktrace;
        }

        Map<String, Object> error() {
            return Call.error("FunctionError", getMessage(), stacktrace);
        }
    }

    @SuppressWarnings("unchecked")
    private Handler(Class<?> type, ClassLoader loader, Object instance) {
        this.type = type;
        this.loader = loader;
        this.instance = (BiFunction<Object, Object, Object>) instance;
        this.contextType = Types.argument(type, BiFunction.class, 0);
        this.payloadType = Types.argument(type, BiFunction.class, 1);
    }

    Object context(Map<String, Object> context) throws Convert.Mismatch {
        return convert(context, contextType, "context");
    }

    Object payload(Object payload) throws Convert.Mismatch {
        return convert(payload, payloadType, "payload");
    }

    private static Object convert(Object json, Type type, String what) throws Convert.Mismatch {
        try {
            return Convert.to(json, type, "$");
        } catch (Convert.Mismatch mismatch) {
            throw new Convert.Mismatch("the " + what + " cannot be converted to " + type.getTypeName() + ": "
                    + mismatch.getMessage());
        }
    }

    Object apply(Object context, Object payload) {
        Thread.currentThread().setContextClassLoader(loader);
        return instance.apply(context, payload);
    }

    /** Load the class `name` (empty: the one source file's class) and make its instance. */
    static Handler load(Path source, Path classes, String classpath, String name) throws Invalid {
        String className = name.isEmpty() ? Sources.defaultHandler(source, classes) : name;
        URLClassLoader loader = new URLClassLoader(urls(source, classes, classpath), Handler.class.getClassLoader());
        Thread.currentThread().setContextClassLoader(loader);
        Class<?> type;
        try {
            type = Class.forName(className, true, loader);
        } catch (ClassNotFoundException missing) {
            throw new Invalid("class " + className + " was not found among the function's classes: is it the"
                    + " fully qualified name of a class of its source?");
        } catch (LinkageError broken) { // a class it needs is missing, or its static initialiser failed
            Throwable why = broken instanceof ExceptionInInitializerError && broken.getCause() != null
                    ? broken.getCause() : broken;
            throw new Invalid("cannot load " + className + ": " + why, Call.stacktrace(why));
        }
        if (!BiFunction.class.isAssignableFrom(type)) {
            throw new Invalid(className + " must implement java.util.function.BiFunction<Map<String, Object>, T, R>");
        }
        if (type.isInterface() || Modifier.isAbstract(type.getModifiers())) {
            throw new Invalid(className + " is abstract: the handler must be a class that can be instantiated");
        }
        return new Handler(type, loader, instantiate(type));
    }

    private static Object instantiate(Class<?> type) throws Invalid {
        Constructor<?> constructor;
        try {
            constructor = type.getConstructor();
        } catch (NoSuchMethodException none) {
            throw new Invalid(type.getName() + " needs a public constructor without arguments"
                    + (type.getEnclosingClass() != null && !Modifier.isStatic(type.getModifiers())
                    ? " (an inner class must be static)" : ""));
        }
        try {
            constructor.setAccessible(true); // a class of package access is fine too
            return constructor.newInstance();
        } catch (InvocationTargetException failed) {
            Throwable why = failed.getCause();
            throw new Invalid("the constructor of " + type.getName() + " failed: " + why, Call.stacktrace(why));
        } catch (ReflectiveOperationException | RuntimeException | LinkageError refused) {
            throw new Invalid("cannot create " + type.getName() + ": " + refused, Call.stacktrace(refused));
        }
    }

    /** The compiled classes, src/main/resources when present, then each classpath entry; `DIR/*` is
     *  every jar in DIR, in name order. */
    private static URL[] urls(Path source, Path classes, String classpath) throws Invalid {
        List<Path> entries = new ArrayList<>();
        entries.add(classes);
        Path resources = source.resolve("src/main/resources");
        if (Files.isDirectory(resources)) {
            entries.add(resources);
        }
        for (String entry : classpath.split(File.pathSeparator)) {
            if (entry.endsWith("/*")) {
                entries.addAll(jars(Path.of(entry.substring(0, entry.length() - 2))));
            } else if (!entry.isEmpty()) {
                entries.add(Path.of(entry));
            }
        }
        URL[] urls = new URL[entries.size()];
        try {
            for (int i = 0; i < urls.length; i++) {
                urls[i] = entries.get(i).toUri().toURL();
            }
        } catch (IOException | IllegalArgumentException unusable) {
            throw new Invalid("unusable class path entry: " + unusable.getMessage());
        }
        return urls;
    }

    static List<Path> jars(Path folder) {
        List<Path> found = new ArrayList<>();
        if (!Files.isDirectory(folder)) {
            return found;
        }
        try (DirectoryStream<Path> listing = Files.newDirectoryStream(folder)) {
            for (Path file : listing) {
                if (file.getFileName().toString().toLowerCase().endsWith(".jar")) {
                    found.add(file);
                }
            }
        } catch (IOException unreadable) {
            return found;
        }
        Collections.sort(found);
        return found;
    }
}
