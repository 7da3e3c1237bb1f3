package dispatch.runtime;

import java.time.Instant;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One call, from a request (pipe line or HTTP body) to the §3.2 response envelope. Errors (§3.6):
 * an IllegalArgumentException or ClassCastException from the function, or a payload its apply()
 * cannot take, is an InputError; any other Throwable a FunctionError, with its message and its stack
 * trace down to the function's first frame.
 */
final class Call {
    static final String TIMEOUT = "Function execution exceeded the timeout";
    static final String NOT_INVOKED = "Did not invoke, already exceeded timeout";
    private static final int MAX_STACK_LINES = 200;
    /** A call's JSON-encoded output: more is refused with a FunctionError naming the limit. */
    static int maxOutputBytes = 6 << 20;
    /** The worker's process limit, named when a thread or process cannot start for it; 0: none known. */
    static int processes;

    private Call() {
    }

    /** A decoded request: its id (pipe mode), context, payload and deadline (null: none). */
    static final class Request {
        final Object id;
        final Map<String, Object> context;
        final Object payload;
        final Instant deadline;

        private Request(Object id, Map<String, Object> context, Object payload, Instant deadline) {
            this.id = id;
            this.context = context;
            this.payload = payload;
            this.deadline = deadline;
        }

        /** Raise Json.Invalid with the reason when the body is not a JSON object. */
        @SuppressWarnings("unchecked")
        static Request parse(String body) throws Json.Invalid {
            Object parsed = Json.parse(body);
            if (!(parsed instanceof Map)) {
                throw new Json.Invalid("the body must be a JSON object with context and payload");
            }
            Map<String, Object> request = (Map<String, Object>) parsed;
            Object context = request.get("context");
            if (context != null && !(context instanceof Map)) {
                throw new Json.Invalid("context must be a JSON object");
            }
            Map<String, Object> given = context == null ? new LinkedHashMap<String, Object>()
                    : (Map<String, Object>) context;
            return new Request(request.get("id"), given, request.get("payload"), deadline(given.get("deadline")));
        }

        /** Milliseconds until the deadline (negative once passed), Long.MAX_VALUE without one. */
        long millisLeft() {
            return deadline == null ? Long.MAX_VALUE : deadline.toEpochMilli() - System.currentTimeMillis();
        }

        boolean expired() {
            return deadline != null && !Instant.now().isBefore(deadline);
        }
    }

    /** RFC 3339, fractional seconds allowed; without an offset, UTC; anything else: no deadline. */
    private static Instant deadline(Object value) {
        if (!(value instanceof String) || ((String) value).isEmpty()) {
            return null;
        }
        String text = ((String) value).toUpperCase().replace(' ', 'T');
        try {
            return OffsetDateTime.parse(text).toInstant();
        } catch (DateTimeParseException withoutOffset) {
            try {
                return LocalDateTime.parse(text).toInstant(ZoneOffset.UTC);
            } catch (DateTimeParseException unreadable) {
                return null;
            }
        }
    }

    /** The envelope of a call, and whether the function ran out of memory (the process must end). */
    static final class Outcome {
        final String envelope;
        final boolean outOfMemory;

        Outcome(String envelope, boolean outOfMemory) {
            this.envelope = envelope;
            this.outOfMemory = outOfMemory;
        }
    }

    /** Run one call on this thread. `memoryMb`: the worker's memory limit, 0 when none is known. */
    static Outcome run(Handler handler, Request request, int limit, int memoryMb) {
        if (request.expired()) {
            return new Outcome(failure("FunctionError", NOT_INVOKED), false);
        }
        Object context;
        Object payload;
        try {
            context = handler.context(request.context);
            payload = handler.payload(request.payload);
        } catch (Convert.Mismatch mismatch) {
            return new Outcome(failure("InputError", mismatch.getMessage()), false);
        }
        Capture.Logs logs = Capture.begin(limit);
        Map<String, Object> error = null;
        Object result = null;
        boolean outOfMemory = false;
        try {
            result = handler.apply(context, payload);
        } catch (OutOfMemoryError exhausted) {
            if (processes > 0 && String.valueOf(exhausted.getMessage()).contains("unable to create native thread")) {
                error = error("FunctionError", processesMessage(), stacktrace(exhausted));
                return new Outcome(envelope(logs.stdout.lines(), logs.stderr.lines(), error, "null"), false);
            }
            outOfMemory = memoryMb > 0;
            error = outOfMemory ? error("FunctionError", memoryMessage(memoryMb), new ArrayList<String>())
                    : describe(exhausted);
        } catch (Throwable thrown) {
            error = describe(thrown);
        } finally {
            Capture.end(logs);
        }
        String output = "null";
        if (error == null) {
            try {
                output = Json.write(Plain.of(result));
            } catch (Plain.NotJson | RuntimeException | StackOverflowError notJson) {
                error = error("FunctionError", "result is not JSON serialisable: " + notJson.getMessage(),
                        new ArrayList<String>());
            }
            if (output.length() > maxOutputBytes / 3 && utf8Length(output) > maxOutputBytes) {
                error = error("FunctionError", "Function output exceeded its limit of " + maxOutputBytes + " bytes",
                        new ArrayList<String>());
                output = "null";
            }
        }
        return new Outcome(envelope(logs.stdout.lines(), logs.stderr.lines(), error, output), outOfMemory);
    }

    /** Load what every call uses (request parsing, capture, the envelope) before the first call
     *  needs it: a worker's start is before the deploy is READY, its first call after. The
     *  function's own classes are left alone: making them could run its code. */
    static void warmUp(int limit) {
        try {
            Request request = Request.parse("{\"id\":0,\"context\":{\"deadline\":\"2000-01-01T00:00:00Z\"},"
                    + "\"payload\":{\"warm\":[1,2.5,\"\\u00e9\",true,null]}}");
            Capture.Logs logs = Capture.begin(limit);
            Capture.end(logs);
            envelope(logs.stdout.lines(), logs.stderr.lines(), null, Json.write(Plain.of(request.payload)));
            failure("FunctionError", NOT_INVOKED);
        } catch (Json.Invalid | Plain.NotJson impossible) {
            throw new IllegalStateException(impossible);
        }
    }

    private static long utf8Length(String text) {
        long bytes = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : Character.isSurrogate(c) ? 2 : 3;
        }
        return bytes;
    }

    static String processesMessage() {
        return "Function exceeded its process limit of " + processes + " (processes and threads)";
    }

    static String memoryMessage(int memoryMb) {
        return "Function exceeded its memory limit of " + memoryMb + " MB";
    }

    static String failure(String type, String message) {
        List<String> none = Collections.emptyList();
        return envelope(none, none, error(type, message, new ArrayList<String>()), "null");
    }

    private static String envelope(List<String> stdout, List<String> stderr, Map<String, Object> error,
                                   String payloadJson) {
        StringBuilder out = new StringBuilder(64 + payloadJson.length()).append("{\"context\":{\"logs\":{\"stdout\":");
        Json.write(out, stdout);
        out.append(",\"stderr\":");
        Json.write(out, stderr);
        out.append("},\"error\":");
        Json.write(out, error);
        return out.append("},\"payload\":").append(payloadJson).append('}').toString();
    }

    static Map<String, Object> error(String type, String message, List<String> stacktrace) {
        Map<String, Object> error = new LinkedHashMap<>();
        error.put("type", type);
        error.put("message", message);
        error.put("stacktrace", stacktrace);
        return error;
    }

    static Map<String, Object> describe(Throwable thrown) {
        boolean input = thrown instanceof IllegalArgumentException || thrown instanceof ClassCastException;
        if (processes > 0 && thrown instanceof java.io.IOException && String.valueOf(thrown.getMessage())
                .contains("error=11,")) {
            return error("FunctionError", processesMessage(), stacktrace(thrown));
        }
        return error(input ? "InputError" : "FunctionError", messageOf(thrown), stacktrace(thrown));
    }

    static String messageOf(Throwable thrown) {
        try {
            String message = thrown.getMessage();
            return message == null || message.isEmpty() ? thrown.getClass().getName() : message;
        } catch (RuntimeException broken) { // a getMessage() of the function's own that fails
            return thrown.getClass().getName();
        }
    }

    /** As printStackTrace() prints it, each trace cut where the function server's frames begin. */
    static List<String> stacktrace(Throwable thrown) {
        List<String> lines = new ArrayList<>();
        Set<Throwable> seen = Collections.newSetFromMap(new IdentityHashMap<Throwable, Boolean>());
        String prefix = "";
        for (Throwable at = thrown; at != null && seen.add(at); at = at.getCause()) {
            lines.add(prefix + describeOnce(at));
            for (StackTraceElement frame : at.getStackTrace()) {
                if (frame.getClassName().startsWith("dispatch.runtime.")) {
                    break;
                }
                if (lines.size() >= MAX_STACK_LINES) {
                    lines.add("\t...");
                    return lines;
                }
                lines.add("\tat " + frame);
            }
            prefix = "Caused by: ";
        }
        return lines;
    }

    private static String describeOnce(Throwable thrown) {
        String message = messageOf(thrown);
        String name = thrown.getClass().getName();
        return message.equals(name) ? name : name + ": " + message;
    }
}
