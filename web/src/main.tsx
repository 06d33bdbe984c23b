// Entry point: styles (uPlot's, then ours) and the app.
import "uplot/dist/uPlot.min.css";
import "./app.css";
import { render } from "preact";
import { App } from "./app.js";

render(<App />, document.getElementById("app")!);
