module.exports = async function (context, params) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    return {myField: 'Hello, ' + (params.name || 'Noone') + ', eventually'};
};
