// Every tool, in the order the toolbar and the help overlay show them. Keys are Shift+letter (capitals),
// so they never collide with label keys (lower-case letters and digits).
import navigate from "./navigate.js";
import select from "./select.js";
import move from "./move.js";
import vertex from "./vertex.js";
import point from "./point.js";
import click from "./click.js";
import box from "./box.js";
import ellipse from "./ellipse.js";
import polygon from "./polygon.js";
import polyline from "./polyline.js";
import freehand from "./freehand.js";
import { brush, eraser } from "./brush.js";
import hole from "./hole.js";

export const TOOLS = [navigate, select, move, vertex, point, click, box, ellipse, polygon, polyline, freehand, brush, eraser, hole];
