package dispatch.runtime;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitOption;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;

/**
 * A function's Java source: one .java file, or a folder of them in package folders at its root or in
 * Maven's src/main/java (a pom.xml there is not read: the image brings the dependencies). Only the
 * handler's class and what it refers to are compiled (javac -implicit:class -sourcepath), so other
 * sources beside it, which may need libraries the image lacks, do not stop it.
 */
final class Sources {
    private static final Pattern PACKAGE = Pattern.compile("^package\\s+([\\p{L}_$][\\p{L}\\p{N}_$.\\s]*);");
    private static final Pattern COMMENTS = Pattern.compile("(?s)/\\*.*?\\*/|//[^\\n]*");

    private Sources() {
    }

    static Path root(Path source) {
        Path maven = source.resolve("src/main/java");
        return Files.isDirectory(maven) ? maven : source;
    }

    /** Dispatch's rule for an empty handler: the class of the one .java file, by its package and name. */
    static String defaultHandler(Path source, Path classes) throws Handler.Invalid {
        List<Path> files = javaFiles(source, classes);
        if (files.size() != 1) {
            List<String> names = new ArrayList<>();
            for (Path file : files) {
                names.add(source.relativize(file).toString());
            }
            throw new Handler.Invalid("Exactly 1 source file needed when HANDLER is empty (found "
                    + (names.isEmpty() ? "none" : String.join(", ", names)) + ")");
        }
        Path file = files.get(0);
        String simple = file.getFileName().toString().replaceFirst("\\.java$", "");
        String pkg = packageOf(file);
        return pkg.isEmpty() ? simple : pkg + "." + simple;
    }

    /** Compile the handler's class (and what it uses) into `classes`, emptied first. */
    static void compile(Path source, Path classes, String handler, String classpath) throws Handler.Invalid {
        String name = handler.isEmpty() ? defaultHandler(source, classes) : handler;
        Path file = fileOf(source, classes, name);
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        if (javac == null) {
            throw new Handler.Invalid("this Java has no compiler (javax.tools): a JDK is needed, not a JRE alone");
        }
        List<String> jars = new ArrayList<>();
        jars.add(classes.toString());
        for (String entry : classpath.split(File.pathSeparator)) {
            for (Path jar : entry.endsWith("/*") ? Handler.jars(Path.of(entry.substring(0, entry.length() - 2)))
                    : entry.isEmpty() ? Collections.<Path>emptyList() : List.of(Path.of(entry))) {
                jars.add(jar.toString());
            }
        }
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        try {
            empty(classes);
            try (StandardJavaFileManager files = javac.getStandardFileManager(diagnostics, Locale.ROOT,
                    StandardCharsets.UTF_8)) {
                // -proc:none: annotation processors in the image's jars would run code at build time.
                // Inline string concatenation: the invokedynamic kind costs a fresh worker's first
                // call about 15 ms to set up.
                List<String> options = List.of("-d", classes.toString(), "-implicit:class", "-sourcepath",
                        root(source).toString(), "-classpath", String.join(File.pathSeparator, jars), "-proc:none",
                        "-encoding", "UTF-8", "-g", "-nowarn", "-Xlint:none", "-XDstringConcat=inline");
                if (!javac.getTask(null, files, diagnostics, options, null, files.getJavaFileObjects(file.toFile()))
                        .call()) {
                    throw new Handler.Invalid(firstError(diagnostics.getDiagnostics(), source));
                }
            }
        } catch (IOException | RuntimeException failed) {
            throw new Handler.Invalid("cannot compile " + source.relativize(file) + ": " + failed);
        }
    }

    /** The file of the handler's top-level class: in its package folders, else (a single file
     *  uploaded alone keeps no folders) the one file of that name. */
    private static Path fileOf(Path source, Path classes, String handler) throws Handler.Invalid {
        String top = handler.contains("$") ? handler.substring(0, handler.indexOf('$')) : handler;
        Path expected = root(source).resolve(top.replace('.', '/') + ".java");
        if (Files.isRegularFile(expected)) {
            return expected;
        }
        String simple = top.substring(top.lastIndexOf('.') + 1) + ".java";
        List<Path> named = new ArrayList<>();
        for (Path file : javaFiles(source, classes)) {
            if (file.getFileName().toString().equals(simple)) {
                named.add(file);
            }
        }
        if (named.size() == 1) {
            return named.get(0);
        }
        throw new Handler.Invalid("no source file for class " + handler + ": expected "
                + source.relativize(expected) + (named.isEmpty() ? "" : " (found " + named.size() + " files named "
                + simple + ")"));
    }

    private static List<Path> javaFiles(Path source, final Path classes) throws Handler.Invalid {
        final List<Path> found = new ArrayList<>();
        try {
            // Following links: a worker reaches its folder through the link /proc/self/cwd.
            Files.walkFileTree(source, EnumSet.of(FileVisitOption.FOLLOW_LINKS), Integer.MAX_VALUE,
                    new SimpleFileVisitor<Path>() {
                @Override
                public FileVisitResult visitFileFailed(Path file, IOException problem) {
                    return FileVisitResult.CONTINUE; // a link loop or an unreadable corner: not a source
                }

                @Override
                public FileVisitResult preVisitDirectory(Path folder, BasicFileAttributes attributes) {
                    return folder.equals(classes) ? FileVisitResult.SKIP_SUBTREE : FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attributes) {
                    if (attributes.isRegularFile() && file.getFileName().toString().endsWith(".java")) {
                        found.add(file);
                    }
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException unreadable) {
            throw new Handler.Invalid("cannot read the function's source: " + unreadable);
        }
        Collections.sort(found);
        return found;
    }

    private static String packageOf(Path file) throws Handler.Invalid {
        String code;
        try {
            code = new String(Files.readAllBytes(file), StandardCharsets.UTF_8);
        } catch (IOException unreadable) {
            throw new Handler.Invalid("cannot read " + file.getFileName() + ": " + unreadable);
        }
        Matcher declared = PACKAGE.matcher(COMMENTS.matcher(code).replaceAll(" ").strip());
        return declared.find() ? declared.group(1).replaceAll("\\s", "") : "";
    }

    /** As javac prints it: where, what, the source line and a caret under the spot, the details. */
    private static String firstError(List<Diagnostic<? extends JavaFileObject>> diagnostics, Path source) {
        Diagnostic<? extends JavaFileObject> first = null;
        int errors = 0;
        for (Diagnostic<? extends JavaFileObject> diagnostic : diagnostics) {
            if (diagnostic.getKind() == Diagnostic.Kind.ERROR) {
                errors++;
                first = first == null ? diagnostic : first;
            }
        }
        if (first == null) {
            return "javac failed without saying why";
        }
        String[] message = first.getMessage(Locale.ROOT).split("\n");
        StringBuilder text = new StringBuilder();
        if (first.getSource() != null) {
            Path file = Path.of(first.getSource().toUri());
            text.append(source.toAbsolutePath().relativize(file.toAbsolutePath())).append(':')
                    .append(first.getLineNumber()).append(": ");
            text.append("error: ").append(message[0]).append(sourceLine(file, first));
        } else {
            text.append("error: ").append(message[0]);
        }
        for (int i = 1; i < message.length; i++) {
            text.append('\n').append(message[i]);
        }
        if (errors > 1) {
            text.append("\n(").append(errors - 1).append(errors > 2 ? " more errors)" : " more error)");
        }
        return text.toString();
    }

    private static String sourceLine(Path file, Diagnostic<?> diagnostic) {
        try {
            List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
            long number = diagnostic.getLineNumber();
            if (number < 1 || number > lines.size()) {
                return "";
            }
            String line = lines.get((int) number - 1);
            long column = diagnostic.getColumnNumber();
            String caret = column >= 1 ? " ".repeat((int) column - 1) + "^" : "";
            return "\n" + line + (caret.isEmpty() ? "" : "\n" + caret);
        } catch (IOException | RuntimeException unreadable) {
            return "";
        }
    }

    private static void empty(Path folder) throws IOException {
        if (Files.isDirectory(folder)) {
            Files.walkFileTree(folder, new SimpleFileVisitor<Path>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attributes) throws IOException {
                    Files.delete(file);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult postVisitDirectory(Path dir, IOException problem) throws IOException {
                    if (!dir.equals(folder)) {
                        Files.delete(dir);
                    }
                    return FileVisitResult.CONTINUE;
                }
            });
        }
        Files.createDirectories(folder);
    }
}
