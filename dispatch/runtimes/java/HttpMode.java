package dispatch.runtime;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * HTTP mode: the §3.2 runtime server for containers, on --port or $PORT (8080), on the address $HOST
 * (default: every address). GET /healthz answers 200 {} or 500 with the handler's problem; POST on
 * any path runs a call. Up to --concurrency calls run at once, the others wait their turn. A call
 * still running at its deadline cannot be stopped inside the process: its request is answered with
 * the timeout, the calls beside it with why they end, and the process exits, leaving the restart to
 * the container's supervisor.
 */
final class HttpMode implements HttpHandler {
    static final int EXIT_AFTER_TIMEOUT = 70;
    private static final long STOP_MILLIS = 10_000;
    private static final String BESIDE = "the function process ended during the call: another run on the same"
            + " function process exceeded its timeout";

    private final Handler handler;
    private final Handler.Invalid problem;
    private final Server.Options options;
    private final Semaphore turns;
    private final ExecutorService calls = Executors.newCachedThreadPool(new PipeMode.Daemons());
    private final Set<Answer> inFlight = ConcurrentHashMap.newKeySet();
    private final AtomicBoolean ending = new AtomicBoolean();

    private HttpMode(Handler handler, Handler.Invalid problem, Server.Options options) {
        this.handler = handler;
        this.problem = problem;
        this.options = options;
        this.turns = new Semaphore(Math.max(1, options.concurrency), true);
    }

    static void serve(Handler handler, Handler.Invalid problem, Server.Options options) throws IOException {
        String host = System.getenv("HOST");
        String port = System.getenv("PORT");
        int number = options.port > 0 ? options.port : port == null || port.isEmpty() ? 8080 : Integer.parseInt(port);
        InetSocketAddress address = host == null || host.isEmpty() ? new InetSocketAddress(number)
                : new InetSocketAddress(host, number);
        HttpServer server = HttpServer.create(address, 128);
        final HttpMode mode = new HttpMode(handler, problem, options);
        server.createContext("/", mode);
        server.setExecutor(Executors.newCachedThreadPool(new PipeMode.Daemons()));
        server.start();
        // SIGTERM: a clean exit once the calls in flight are answered (10 s at most). Not
        // HttpServer.stop(), which on Java 17 waits its whole delay even with nothing in flight.
        sun.misc.Signal.handle(new sun.misc.Signal("TERM"), new sun.misc.SignalHandler() {
            @Override
            public void handle(sun.misc.Signal signal) {
                long until = System.currentTimeMillis() + STOP_MILLIS;
                while (!mode.inFlight.isEmpty() && System.currentTimeMillis() < until) {
                    try {
                        Thread.sleep(20);
                    } catch (InterruptedException stopped) {
                        break;
                    }
                }
                System.exit(0);
            }
        });
    }

    @Override
    public void handle(HttpExchange exchange) throws IOException {
        try {
            String route = exchange.getRequestURI().getPath();
            if ("GET".equals(exchange.getRequestMethod()) && "/healthz".equals(route)) {
                send(exchange, problem == null ? 200 : 500,
                        problem == null ? "{}" : "{\"error\":" + Json.write(problem.error()) + "}");
            } else if (!"POST".equals(exchange.getRequestMethod())) {
                send(exchange, 404, "{\"message\":\"not found\"}");
            } else {
                post(exchange, new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8));
            }
        } finally {
            exchange.close();
        }
    }

    private void post(HttpExchange exchange, String body) throws IOException {
        if (problem != null) {
            send(exchange, 200, Call.failure("FunctionError", problem.getMessage()));
            return;
        }
        final Call.Request request;
        try {
            request = Call.Request.parse(body);
        } catch (Json.Invalid invalid) {
            send(exchange, 200, Call.failure("InputError", "Invalid Input: " + invalid.getMessage()));
            return;
        }
        if (request.expired()) {
            send(exchange, 200, Call.failure("FunctionError", Call.NOT_INVOKED));
            return;
        }
        turns.acquireUninterruptibly();
        Answer answer = new Answer(exchange);
        inFlight.add(answer);
        try {
            Future<Call.Outcome> call = calls.submit(new Callable<Call.Outcome>() {
                @Override
                public Call.Outcome call() {
                    return Call.run(handler, request, options.maxLogBytes, 0);
                }
            });
            String envelope;
            try {
                envelope = call.get(Math.max(0, request.millisLeft()), TimeUnit.MILLISECONDS).envelope;
            } catch (TimeoutException late) {
                endAll(answer);
                return;
            } catch (ExecutionException | InterruptedException broken) {
                envelope = Call.failure("SystemError", String.valueOf(broken.getCause()));
            }
            answer.give(200, envelope);
        } finally {
            inFlight.remove(answer);
            turns.release();
        }
    }

    /** Answer the late call and the calls beside it, then end the process (once, whoever comes first). */
    private void endAll(Answer late) {
        if (!ending.compareAndSet(false, true)) {
            late.give(200, Call.failure("SystemError", BESIDE));
            return;
        }
        late.give(200, Call.failure("FunctionError", Call.TIMEOUT));
        for (Answer beside : inFlight) {
            beside.give(200, Call.failure("SystemError", BESIDE));
        }
        Capture.realErr().println("function process ending: a call ran past its deadline");
        Runtime.getRuntime().halt(EXIT_AFTER_TIMEOUT);
    }

    private static void send(HttpExchange exchange, int status, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }

    /** A request's answer, given once: by its own call or by the call that ends the process. */
    private static final class Answer {
        private final HttpExchange exchange;
        private final AtomicBoolean given = new AtomicBoolean();

        Answer(HttpExchange exchange) {
            this.exchange = exchange;
        }

        void give(int status, String body) {
            if (given.compareAndSet(false, true)) {
                try {
                    send(exchange, status, body);
                } catch (IOException gone) {
                    // the caller went away: nobody to answer
                }
            }
        }
    }
}
