// The Node contenders of bench/http: express bare, express-session with MemoryStore, and with
// connect-redis. CONTENDER picks one; PORT, REDIS_URL from the environment.
const express = require("express");
const session = require("express-session");

async function main() {
  const app = express();
  const kind = process.env.CONTENDER;
  if (kind !== "express-bare") {
    let store;
    if (kind === "express-redis") {
      const { RedisStore } = require("connect-redis");
      const { createClient } = require("redis");
      const client = createClient({ url: process.env.REDIS_URL });
      await client.connect();
      store = new RedisStore({ client, prefix: "bench-http-node:" });
    }
    app.use(session({ store, secret: "an http benchmark secret with enough entropy",
      resave: false, saveUninitialized: false, cookie: { maxAge: 3600 * 1000 } }));
  }
  app.get("/write", (req, res) => {
    if (req.session) req.session.n = (req.session.n || 0) + 1;
    res.send("ok");
  });
  app.get("/read", (req, res) => {
    if (req.session) void req.session.n;
    res.send("ok");
  });
  app.listen(Number(process.env.PORT), "127.0.0.1", () => console.log("listening"));
}

main();
