// A plain express-session + connect-redis app, run beside sessionware by tests/test_redis_node.py.
// Environment: PORT, REDIS_URL, SECRET, PREFIX. Prints "listening" once it accepts requests.
const express = require("express");
const session = require("express-session");
const { RedisStore } = require("connect-redis");
const { createClient } = require("redis");

async function main() {
  const client = createClient({ url: process.env.REDIS_URL });
  await client.connect();
  const app = express();
  app.use(
    session({
      store: new RedisStore({ client, prefix: process.env.PREFIX }),
      secret: process.env.SECRET,
      name: "connect.sid",
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: 3600 * 1000 },
    })
  );
  app.get("/inc", (req, res) => {
    req.session.count = (req.session.count || 0) + 1;
    req.session.by = "node";
    res.json({ count: req.session.count, id: req.sessionID });
  });
  app.get("/get", (req, res) => {
    res.json({ count: req.session.count ?? null, by: req.session.by ?? null, id: req.sessionID });
  });
  const server = app.listen(Number(process.env.PORT), "127.0.0.1", () => console.log("listening"));
  process.on("SIGTERM", () => server.close(() => client.quit().then(() => process.exit(0))));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
