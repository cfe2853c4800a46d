// Pan and zoom only (OpenSeadragon's own mouse handling).
export default { name: "navigate", key: "N", title: "Navigate (pan / zoom)", handlesDrag: false };
