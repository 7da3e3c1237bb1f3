package dispatch.runtime;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Serve one Java function (plain JDK 17, no libraries).
 *
 *   java -cp SERVER_CLASSES dispatch.runtime.Server --source DIR [--handler CLASS] [--classes DIR]
 *       [--classpath JARS] [--max-log-bytes N] [--max-output-bytes N] [--processes N] [--concurrency N]
 *       [--memory-mb N]
 *       [--request-fd 3 --response-fd 4 | --http [--port 8080] | --compile [--check] | --check]
 *
 * --source is the function's folder, --classes where its compiled classes go (default
 * SOURCE/.classes), --classpath the image's jars (DIR/* is every jar in DIR). --compile compiles the
 * handler's class (see Sources), --check loads it and makes its instance; either prints the
 * §3.6 error of a bad handler as one JSON line on stderr and exits 1. Pipe mode (the default) and
 * HTTP mode serve calls: see PipeMode and HttpMode. A call's output over --max-output-bytes
 * (JSON-encoded, default 6 MiB) is refused with a FunctionError naming the limit; a thread or
 * process the function cannot start for want of processes (--processes, the worker's RLIMIT_NPROC)
 * fails with an error naming that limit.
 */
public final class Server {
    private Server() {
    }

    /** The command line. */
    static final class Options {
        Path source = Path.of(".");
        Path classes;
        String handler = "";
        String classpath = "";
        int maxLogBytes = 1 << 20;
        int maxOutputBytes = 6 << 20;
        int processes;
        int requestFd = 3;
        int responseFd = 4;
        int concurrency = 1;
        int memoryMb;
        int port;
        boolean http;
        boolean compile;
        boolean check;

        static Options parse(String[] argv) {
            Options options = new Options();
            for (int i = 0; i < argv.length; i++) {
                String flag = argv[i];
                String value = i + 1 < argv.length ? argv[i + 1] : null;
                boolean takesValue = true;
                switch (flag) {
                    case "--source": options.source = Path.of(need(flag, value)); break;
                    case "--classes": options.classes = Path.of(need(flag, value)); break;
                    case "--handler": options.handler = value == null ? "" : value; break;
                    case "--classpath": options.classpath = need(flag, value); break;
                    case "--max-log-bytes": options.maxLogBytes = number(flag, value); break;
                    case "--max-output-bytes": options.maxOutputBytes = number(flag, value); break;
                    case "--processes": options.processes = number(flag, value); break;
                    case "--request-fd": options.requestFd = number(flag, value); break;
                    case "--response-fd": options.responseFd = number(flag, value); break;
                    case "--concurrency": options.concurrency = number(flag, value); break;
                    case "--memory-mb": options.memoryMb = number(flag, value); break;
                    case "--port": options.port = number(flag, value); options.http = true; break;
                    default:
                        takesValue = false;
                        if ("--http".equals(flag)) {
                            options.http = true;
                        } else if ("--compile".equals(flag)) {
                            options.compile = true;
                        } else if ("--check".equals(flag)) {
                            options.check = true;
                        } else {
                            throw new IllegalArgumentException("unknown argument " + flag);
                        }
                }
                i += takesValue ? 1 : 0;
            }
            if (options.classes == null) {
                options.classes = options.source.resolve(".classes");
            }
            return options;
        }

        private static String need(String flag, String value) {
            if (value == null) {
                throw new IllegalArgumentException(flag + " needs a value");
            }
            return value;
        }

        private static int number(String flag, String value) {
            try {
                return Integer.parseInt(need(flag, value));
            } catch (NumberFormatException notNumber) {
                throw new IllegalArgumentException(flag + " needs a whole number, not " + value);
            }
        }
    }

    public static void main(String[] argv) throws IOException {
        Options options;
        try {
            options = Options.parse(argv);
        } catch (IllegalArgumentException wrong) {
            System.err.println(wrong.getMessage());
            System.exit(2);
            return;
        }
        if (options.compile) {
            try {
                Sources.compile(options.source, options.classes, options.handler, options.classpath);
            } catch (Handler.Invalid problem) {
                refuse(problem);
            }
            if (!options.check) {
                System.exit(0);
            }
        }
        Handler handler = null;
        Handler.Invalid problem = null;
        try {
            handler = Handler.load(options.source, options.classes, options.classpath, options.handler);
        } catch (Handler.Invalid invalid) {
            problem = invalid;
        } catch (RuntimeException | LinkageError unexpected) {
            problem = new Handler.Invalid(String.valueOf(unexpected), Call.stacktrace(unexpected));
        }
        if (options.check) {
            if (problem != null) {
                refuse(problem);
            }
            System.exit(0);
        }
        Call.maxOutputBytes = options.maxOutputBytes;
        Call.processes = options.processes;
        Capture.install(options.concurrency > 1);
        if (options.http) {
            HttpMode.serve(handler, problem, options);
        } else {
            System.exit(PipeMode.serve(handler, problem, options));
        }
    }

    private static void refuse(Handler.Invalid problem) {
        System.err.println(Json.write(problem.error()));
        System.exit(1);
    }
}
