// node-hello: a Cloudport sample using only Node's http module.
// Listens on $PORT, answers GET / with its name and GET /healthz with "ok",
// and prints one line per request to stdout.
const http = require("http");

const NAME = "node-hello";
const port = Number(process.env.PORT || 3000);

const server = http.createServer((req, res) => {
  console.log(`request ${req.method} ${req.url}`);
  const body = req.url === "/healthz" ? "ok\n" : `${NAME} sample\n`;
  res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(body);
});

server.listen(port, "0.0.0.0", () => {
  console.log(`${NAME} listening on ${port}`);
});

// npm start forwards SIGTERM; close cleanly so a stop is quick.
process.on("SIGTERM", () => server.close(() => process.exit(0)));
