// The OpenAI JS SDK's helpers against a node: node stream.mjs <base URL> <API key> <model>
// Prints one JSON line: what .stream(), runTools() and responses.stream() gave, or {"error"}.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

async function chatStream() {
  const stream = client.chat.completions.stream({
    model,
    messages: [{ role: "user", content: "Hello from the JS SDK" }],
    stream_options: { include_usage: true },
  });
  let deltas = "";
  stream.on("content", (delta) => {
    deltas += delta;
  });
  const final = await stream.finalChatCompletion();
  return { deltas, content: final.choices[0].message.content, usage: final.usage, id: final.id };
}

async function runTools() {
  const calls = [];
  const runner = client.chat.completions.runTools({
    model,
    messages: [{ role: "user", content: "What is the weather in Lisbon?" }],
    stream: true,
    tools: [
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "The weather in a city",
          parameters: {
            type: "object",
            properties: { city: { type: "string" } },
            required: ["city"],
          },
          parse: JSON.parse,
          function: async (args) => {
            calls.push(args);
            return "sunny, 21 C";
          },
        },
      },
    ],
  });
  return { content: await runner.finalContent(), calls };
}

async function responsesStream() {
  const stream = client.responses.stream({ model, input: "Hello, Responses" });
  let deltas = "";
  stream.on("response.output_text.delta", (event) => {
    deltas += event.delta;
  });
  const final = await stream.finalResponse();
  return { deltas, output_text: final.output_text, usage: final.usage };
}

try {
  const result = { stream: await chatStream(), tools: await runTools() };
  result.responses = await responsesStream();
  console.log(JSON.stringify(result));
} catch (error) {
  console.log(JSON.stringify({ error: String(error), status: error?.status ?? null }));
  process.exitCode = 1;
}
