package dispatch.runtime;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Per-call capture of System.out and System.err (§3.5). Both become streams that hand each write to
 * the call its thread works for: the thread running the call and the threads it starts (an
 * InheritableThreadLocal), else, while calls run one at a time, the one call running. Writes after
 * a call ended, or outside any call, go to the real streams.
 */
final class Capture {
    private static final InheritableThreadLocal<Logs> CALL = new InheritableThreadLocal<>();
    private static final Set<Logs> RUNNING = ConcurrentHashMap.newKeySet();
    private static volatile Logs only;
    private static boolean shared;
    private static PrintStream realOut = System.out;
    private static PrintStream realErr = System.err;

    private Capture() {
    }

    /** The two lines of output of one call. */
    static final class Logs {
        final Lines stdout;
        final Lines stderr;
        volatile boolean done;

        Logs(int limit) {
            stdout = new Lines(limit);
            stderr = new Lines(limit);
        }
    }

    /** `sharedCalls`: several calls may run at once, so a thread of no call belongs to none. */
    static void install(boolean sharedCalls) {
        shared = sharedCalls;
        realOut = System.out;
        realErr = System.err;
        System.setOut(new PrintStream(new Router(false), true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(new Router(true), true, StandardCharsets.UTF_8));
        // System.exit() inside a call ends the process: hand what the calls printed to the real streams.
        Runtime.getRuntime().addShutdownHook(new Thread("capture-flush") {
            @Override
            public void run() {
                for (Logs logs : RUNNING) {
                    byte[] out = logs.stdout.bytes();
                    byte[] err = logs.stderr.bytes();
                    realOut.write(out, 0, out.length);
                    realErr.write(err, 0, err.length);
                }
                realOut.flush();
                realErr.flush();
            }
        });
    }

    static Logs begin(int limit) {
        Logs logs = new Logs(limit);
        CALL.set(logs);
        RUNNING.add(logs);
        if (!shared) {
            only = logs;
        }
        return logs;
    }

    static void end(Logs logs) {
        logs.done = true;
        RUNNING.remove(logs);
        CALL.remove();
        if (only == logs) {
            only = null;
        }
    }

    static PrintStream realErr() {
        return realErr;
    }

    private static Logs current() {
        Logs logs = CALL.get();
        if (logs == null) {
            logs = only;
        }
        return logs == null || logs.done ? null : logs;
    }

    private static final class Router extends OutputStream {
        private final boolean errors;

        Router(boolean errors) {
            this.errors = errors;
        }

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] data, int offset, int length) {
            Logs logs = current();
            if (logs != null) {
                (errors ? logs.stderr : logs.stdout).write(data, offset, length);
            } else {
                (errors ? realErr : realOut).write(data, offset, length);
            }
        }

        @Override
        public void flush() {
            (errors ? realErr : realOut).flush();
        }
    }

    /** What one stream received during a call, up to `limit` bytes, cut on a character boundary. */
    static final class Lines {
        private final int limit;
        private byte[] data = new byte[128];
        private int size;
        private long dropped;
        private boolean full;

        Lines(int limit) {
            this.limit = Math.max(0, limit);
        }

        synchronized void write(byte[] bytes, int offset, int length) {
            int kept = full ? 0 : Math.min(length, limit - size);
            if (size + kept > data.length) {
                data = Arrays.copyOf(data, Math.max(size + kept, Math.min(data.length * 2, limit)));
            }
            System.arraycopy(bytes, offset, data, size, kept);
            size += kept;
            if (kept < length) {
                dropped += length - kept;
                if (!full) {
                    full = true;
                    int cut = characterBoundary();
                    dropped += size - cut;
                    size = cut;
                }
            }
        }

        /** Where the kept bytes end once an incomplete UTF-8 sequence at their end is left out. */
        private int characterBoundary() {
            for (int back = 1; back <= 3 && back <= size; back++) {
                int b = data[size - back] & 0xff;
                if ((b & 0xc0) == 0x80) {
                    continue; // a continuation byte: its lead byte is further back
                }
                int needed = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
                return needed > back ? size - back : size;
            }
            return size;
        }

        synchronized byte[] bytes() {
            return Arrays.copyOf(data, size);
        }

        synchronized List<String> lines() {
            List<String> lines = new ArrayList<>();
            if (size > 0) {
                String text = new String(data, 0, size, StandardCharsets.UTF_8);
                lines.addAll(Arrays.asList(text.split("\n", -1)));
                if (lines.get(lines.size() - 1).isEmpty()) {
                    lines.remove(lines.size() - 1);
                }
            }
            if (dropped > 0) {
                lines.add("... log truncated: " + dropped + " bytes over the " + limit + "-byte limit");
            }
            return lines;
        }
    }
}
