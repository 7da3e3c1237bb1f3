package dispatch.runtime;

import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;

/**
 * Pipe mode: how the local runtime drives its warm workers. Newline-delimited JSON on two inherited
 * descriptors (opened again through /proc/self/fd, which Java has no other way to reach), so what
 * the function writes to fds 1 and 2 stays out of the protocol:
 *
 *   platform -&gt; worker   {"id": 7, "context": {...}, "payload": ...}
 *   worker -&gt; platform   {"ready": true} (or {"ready": false, "error": {...}}, then exit 1), then
 *                         {"id": 7, "answer": &lt;the §3.2 envelope&gt;} per request, in completion order
 *
 * Up to `concurrency` calls run at once on as many threads (the platform never sends more). A call
 * out of memory under a known limit is answered with "retire": "memory", then the process exits
 * with EXIT_OUT_OF_MEMORY so the platform replaces it. Deadlines passing during a call are the
 * platform's to enforce: it kills the worker.
 */
final class PipeMode {
    static final int EXIT_OUT_OF_MEMORY = 86;

    private final FileOutputStream responses;

    private PipeMode(FileOutputStream responses) {
        this.responses = responses;
    }

    static int serve(Handler handler, Handler.Invalid problem, Server.Options options) throws IOException {
        PipeMode pipe = new PipeMode(new FileOutputStream("/proc/self/fd/" + options.responseFd));
        if (problem != null) {
            pipe.send("{\"ready\":false,\"error\":" + Json.write(problem.error()) + "}");
            return 1;
        }
        Call.warmUp(options.maxLogBytes);
        pipe.send("{\"ready\":true}");
        BufferedReader requests = new BufferedReader(new InputStreamReader(
                new FileInputStream("/proc/self/fd/" + options.requestFd), StandardCharsets.UTF_8), 1 << 16);
        ExecutorService calls = Executors.newFixedThreadPool(Math.max(1, options.concurrency), new Daemons());
        for (String line = requests.readLine(); line != null; line = requests.readLine()) {
            if (!line.isBlank()) {
                pipe.dispatch(line, handler, options, calls);
            }
        }
        calls.shutdown();
        try {
            calls.awaitTermination(Long.MAX_VALUE, TimeUnit.MILLISECONDS);
        } catch (InterruptedException stopped) {
            return 0;
        }
        return 0;
    }

    private void dispatch(String line, final Handler handler, final Server.Options options, ExecutorService calls) {
        final Call.Request request;
        try {
            request = Call.Request.parse(line);
        } catch (Json.Invalid invalid) {
            send(answer(null, Call.failure("InputError", "Invalid Input: " + invalid.getMessage()), false));
            return;
        }
        calls.execute(new Runnable() {
            @Override
            public void run() {
                Call.Outcome outcome = Call.run(handler, request, options.maxLogBytes, options.memoryMb);
                send(answer(request.id, outcome.envelope, outcome.outOfMemory));
                if (outcome.outOfMemory) {
                    Runtime.getRuntime().halt(EXIT_OUT_OF_MEMORY); // its memory can no longer be trusted
                }
            }
        });
    }

    private static String answer(Object id, String envelope, boolean retire) {
        return "{\"id\":" + Json.write(id) + (retire ? ",\"retire\":\"memory\"" : "") + ",\"answer\":" + envelope + "}";
    }

    /** One line per write, whole: answers of calls finishing together never interleave. */
    private synchronized void send(String line) {
        try {
            responses.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        } catch (IOException gone) {
            Runtime.getRuntime().halt(0); // the platform closed the pipe: nobody is left to answer
        }
    }

    /** Call threads do not keep the process alive once the requests end. */
    static final class Daemons implements ThreadFactory {
        private int made;

        @Override
        public synchronized Thread newThread(Runnable task) {
            Thread thread = new Thread(task, "call-" + ++made);
            thread.setDaemon(true);
            return thread;
        }
    }
}
